using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Cluster.Compute.Optim;

/// <summary>Adam (Kingma and Ba) with bias correction.</summary>
public sealed class Adam : Optimizer
{
    private readonly float[] _m;
    private readonly float[] _v;

    /// <summary>Creates Adam with the given decay rates and epsilon.</summary>
    public Adam(int parameterCount, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f)
        : base(parameterCount)
    {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(epsilon > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), "Adam needs 0 <= beta1, beta2 < 1 and epsilon > 0.");
        }

        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        _m = new float[parameterCount];
        _v = new float[parameterCount];
    }

    /// <inheritdoc/>
    public override string Name => "adam";

    /// <summary>First-moment decay.</summary>
    public float Beta1 { get; }

    /// <summary>Second-moment decay.</summary>
    public float Beta2 { get; }

    /// <summary>Denominator guard.</summary>
    public float Epsilon { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<float[]> StateBuffers => [_m, _v];

    /// <inheritdoc/>
    protected override void Update(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        var c1 = 1.0 - Math.Pow(Beta1, Steps);
        var c2 = 1.0 - Math.Pow(Beta2, Steps);
        var stepSize = (float)(learningRate * Math.Sqrt(c2) / c1);
        var eps = (float)(Epsilon * Math.Sqrt(c2));
        ref var p = ref MemoryMarshal.GetReference(parameters);
        ref var g = ref MemoryMarshal.GetReference(gradient);
        ref var m = ref MemoryMarshal.GetArrayDataReference(_m);
        ref var v = ref MemoryMarshal.GetArrayDataReference(_v);
        var n = parameters.Length;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var b1 = Vector256.Create(Beta1);
            var b1c = Vector256.Create(1 - Beta1);
            var b2 = Vector256.Create(Beta2);
            var b2c = Vector256.Create(1 - Beta2);
            var ve = Vector256.Create(eps);
            var vs = Vector256.Create(stepSize);
            for (; i <= n - 8; i += 8)
            {
                var gi = Vector256.LoadUnsafe(ref g, (nuint)i);
                var mi = b1 * Vector256.LoadUnsafe(ref m, (nuint)i) + b1c * gi;
                var vi = b2 * Vector256.LoadUnsafe(ref v, (nuint)i) + b2c * gi * gi;
                mi.StoreUnsafe(ref m, (nuint)i);
                vi.StoreUnsafe(ref v, (nuint)i);
                (Vector256.LoadUnsafe(ref p, (nuint)i) - vs * mi / (Vector256.Sqrt(vi) + ve)).StoreUnsafe(ref p, (nuint)i);
            }
        }

        for (; i < n; i++)
        {
            var gi = gradient[i];
            var mi = Beta1 * _m[i] + (1 - Beta1) * gi;
            var vi = Beta2 * _v[i] + (1 - Beta2) * gi * gi;
            _m[i] = mi;
            _v[i] = vi;
            parameters[i] -= stepSize * mi / (MathF.Sqrt(vi) + eps);
        }
    }
}
