namespace Cluster.Compute.Tests;

/// <summary>The one place that defines how close a fast kernel must come to its scalar reference.</summary>
internal static class Tolerances
{
    /// <summary>GEMM: relative to the sum of |a||b| terms, so cancellation does not inflate the error.</summary>
    public const double Gemm = 2e-6;

    /// <summary>Element-wise kernels (exp/tanh approximations of TensorPrimitives included).</summary>
    public const double Elementwise = 2e-6;

    /// <summary>Finite-difference gradient check: relative error bound.</summary>
    public const double GradientCheck = 2e-2;

    /// <summary>Asserts |actual - expected| &lt;= tolerance * max(1, |scale|).</summary>
    public static void Close(double expected, double actual, double tolerance, double scale = 1, string? what = null)
    {
        if (double.IsNaN(expected))
        {
            Assert.True(double.IsNaN(actual), $"{what}: expected NaN, got {actual}");
            return;
        }

        if (double.IsInfinity(expected))
        {
            Assert.Equal(expected, actual);
            return;
        }

        var bound = tolerance * Math.Max(1, Math.Abs(scale));
        Assert.True(Math.Abs(expected - actual) <= bound, $"{what}: expected {expected}, got {actual} (|diff| {Math.Abs(expected - actual)} > {bound})");
    }

    /// <summary>Random floats in [-1, 1) from a fixed seed.</summary>
    public static float[] RandomVector(int length, ulong seed)
    {
        var rng = new Randomness.Rng(seed);
        var v = new float[length];
        for (var i = 0; i < length; i++)
        {
            v[i] = rng.NextFloat() * 2 - 1;
        }

        return v;
    }
}
