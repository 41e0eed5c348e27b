using Cluster.Compute.Kernels;

namespace Cluster.Compute.Tests;

public sealed class ElementwiseKernelTests
{
    public static TheoryData<Activation> AllActivations() => new(Enum.GetValues<Activation>());

    public static IEnumerable<int> Lengths() => Enumerable.Range(0, 257).Concat([1000, 4099]);

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void BiasActivation_EveryLength_MatchesReference(Activation activation)
    {
        foreach (var cols in Lengths())
        {
            const int rows = 3;
            var z = Tolerances.RandomVector(rows * cols, (ulong)cols);
            for (var i = 0; i < z.Length; i++)
            {
                z[i] *= 8; // reach the saturating ranges of sigmoid and tanh
            }

            var bias = Tolerances.RandomVector(cols, (ulong)cols + 7);
            var expected = (float[])z.Clone();
            ReferenceKernels.BiasActivation(expected, rows, cols, bias, activation);
            ElementwiseKernels.BiasActivation(z, rows, cols, bias, activation);
            for (var i = 0; i < z.Length; i++)
            {
                Tolerances.Close(expected[i], z[i], Tolerances.Elementwise, 1, $"{activation} cols={cols} i={i}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void ActivationBackward_EveryLength_MatchesReference(Activation activation)
    {
        foreach (var cols in Lengths())
        {
            const int rows = 2;
            var z = Tolerances.RandomVector(rows * cols, (ulong)cols + 11);
            var y = (float[])z.Clone();
            ReferenceKernels.BiasActivation(y, rows, cols, new float[cols], activation);
            var dy = Tolerances.RandomVector(rows * cols, (ulong)cols + 13);
            var expected = new float[rows * cols];
            var actual = new float[rows * cols];
            ReferenceKernels.ActivationBackward(y, dy, expected, rows, cols, activation);
            ElementwiseKernels.ActivationBackward(y, dy, actual, rows, cols, activation);
            for (var i = 0; i < actual.Length; i++)
            {
                Tolerances.Close(expected[i], actual[i], Tolerances.Elementwise, 1, $"{activation} cols={cols} i={i}");
            }
        }
    }

    [Fact]
    public void SoftmaxCrossEntropy_EveryLength_MatchesReference()
    {
        foreach (var cols in Lengths().Where(c => c >= 1))
        {
            const int rows = 4;
            var z = Tolerances.RandomVector(rows * cols, (ulong)cols + 17);
            var labels = Enumerable.Range(0, rows).Select(r => (r * 7 + cols) % cols).ToArray();
            var zr = (float[])z.Clone();
            var gradExpected = new float[rows * cols];
            var gradActual = new float[rows * cols];
            var (lossExpected, correctExpected) = ReferenceKernels.SoftmaxCrossEntropy(zr, rows, cols, labels, gradExpected);
            var (lossActual, correctActual) = ElementwiseKernels.SoftmaxCrossEntropy(z, rows, cols, labels, gradActual);
            Tolerances.Close(lossExpected, lossActual, 1e-5, lossExpected, $"loss cols={cols}");
            Assert.Equal(correctExpected, correctActual);
            for (var i = 0; i < z.Length; i++)
            {
                Tolerances.Close(zr[i], z[i], Tolerances.Elementwise, 1, $"p cols={cols}");
                Tolerances.Close(gradExpected[i], gradActual[i], Tolerances.Elementwise, 1, $"grad cols={cols}");
            }
        }
    }

    [Fact]
    public void SoftmaxCrossEntropy_HugeLogits_StayFinite()
    {
        float[] z = [1e4f, -1e4f, 3e4f, 88.8f, 89f, -1e30f];
        var grad = new float[6];
        var (loss, correct) = ElementwiseKernels.SoftmaxCrossEntropy(z, 2, 3, [0, 1], grad);
        Assert.True(double.IsFinite(loss));
        Tolerances.Close(2e4 + (89 - 88.8) + Math.Log(1 + Math.Exp(-0.2)), loss, 1e-3, 2e4, "loss");
        Assert.Equal(1, correct);
        Assert.All(z, v => Assert.True(float.IsFinite(v) && v >= 0 && v <= 1));
        Assert.Equal(-1f, grad[0]);
    }

    [Fact]
    public void SoftmaxCrossEntropy_LabelOutOfRange_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => ElementwiseKernels.SoftmaxCrossEntropy(new float[4], 2, 2, [0, 2], new float[4]));
        Assert.Contains("Label 2", ex.Message);
    }

    [Fact]
    public void DivideAndSumSquares_EveryLength_DividesExactlyAndSumsTheSquares()
    {
        foreach (var n in Lengths())
        {
            var values = Tolerances.RandomVector(n, (ulong)n + 17);
            var expected = new float[n];
            const float divisor = 37f;
            System.Numerics.Tensors.TensorPrimitives.Divide(values, divisor, expected);
            double squares = 0;
            foreach (var e in expected)
            {
                squares += (double)e * e;
            }

            var sum = ElementwiseKernels.DivideAndSumSquares(values, divisor);
            // The values bit for bit as the separate division gave them (training's weights depend on it), the sum
            // to float accuracy: it only reports the gradient's norm and screens it for NaN.
            Assert.Equal(expected, values);
            Tolerances.Close(squares, sum, Tolerances.Elementwise, n, $"n={n}");
        }
    }

    [Fact]
    public void Add_EveryLength_MatchesTensorPrimitivesBitForBit()
    {
        // 100,000 floats (400 KB) is past the size from which TensorPrimitives stores non-temporally.
        foreach (var n in Lengths().Append(100_000))
        {
            var x = Tolerances.RandomVector(n, (ulong)n + 3);
            var y = Tolerances.RandomVector(n, (ulong)n + 4);
            var expected = new float[n];
            System.Numerics.Tensors.TensorPrimitives.Add(x, y, expected);
            var actual = new float[n];
            ElementwiseKernels.Add(x, y, actual);
            Assert.Equal(expected, actual);

            // In place, as the coordinator calls it: into the running sum (its first operand), and into the second.
            var intoX = (float[])x.Clone();
            ElementwiseKernels.Add(intoX, y, intoX);
            Assert.Equal(expected, intoX);
            var intoY = (float[])y.Clone();
            ElementwiseKernels.Add(x, intoY, intoY);
            Assert.Equal(expected, intoY);
        }
    }

    [Fact]
    public void Add_BadSpans_AreRefusedAndNothingIsWritten()
    {
        var buffer = Tolerances.RandomVector(64, 9);
        var copy = (float[])buffer.Clone();
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.Add(buffer.AsSpan(0, 32), buffer.AsSpan(32, 32), buffer.AsSpan(1, 32)));
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.Add(buffer.AsSpan(32, 32), buffer.AsSpan(0, 32), buffer.AsSpan(31, 32)));
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.Add(buffer.AsSpan(0, 32), buffer.AsSpan(32, 31), new float[32]));
        Assert.Equal(copy, buffer);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void DivideAndSumSquares_ANonFiniteValueAnywhere_GivesANonFiniteSum(float bad)
    {
        foreach (var n in new[] { 1, 7, 8, 31, 32, 33, 100 })
        {
            foreach (var at in new[] { 0, n / 2, n - 1 })
            {
                var values = Tolerances.RandomVector(n, 5);
                values[at] = bad;
                Assert.False(double.IsFinite(ElementwiseKernels.DivideAndSumSquares(values, 64f)), $"n={n} at={at}");
            }
        }
    }

    [Fact]
    public void ColumnSums_EveryLength_MatchesReference()
    {
        foreach (var cols in Lengths())
        {
            foreach (var rows in new[] { 0, 1, 5, 64 })
            {
                var m = Tolerances.RandomVector(rows * cols, (ulong)(cols * 100 + rows));
                var expected = new float[cols];
                var actual = Enumerable.Repeat(float.NaN, cols).ToArray();
                ReferenceKernels.ColumnSums(m, rows, cols, expected);
                ElementwiseKernels.ColumnSums(m, rows, cols, actual);
                for (var j = 0; j < cols; j++)
                {
                    Tolerances.Close(expected[j], actual[j], Tolerances.Elementwise, rows, $"rows={rows} cols={cols}");
                }
            }
        }
    }

    [Fact]
    public void Relu_SpecialValues_FollowReference()
    {
        float[] z = [float.NaN, 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, -1e-45f, 1e-45f, 2f, float.NaN, -3f];
        var expected = (float[])z.Clone();
        ReferenceKernels.BiasActivation(expected, 1, z.Length, new float[z.Length], Activation.Relu);
        ElementwiseKernels.BiasActivation(z, 1, z.Length, new float[z.Length], Activation.Relu);
        for (var i = 0; i < z.Length; i++)
        {
            Assert.Equal(expected[i], z[i]);
        }

        Assert.True(float.IsNaN(z[0]));
        Assert.Equal(float.PositiveInfinity, z[3]);
        Assert.Equal(0f, z[4]);
    }

    [Fact]
    public void SigmoidAndTanh_Infinities_Saturate()
    {
        float[] z = [float.PositiveInfinity, float.NegativeInfinity, 0f, -0f];
        var s = (float[])z.Clone();
        var t = (float[])z.Clone();
        ElementwiseKernels.BiasActivation(s, 1, 4, new float[4], Activation.Sigmoid);
        ElementwiseKernels.BiasActivation(t, 1, 4, new float[4], Activation.Tanh);
        Assert.Equal([1f, 0f, 0.5f, 0.5f], s);
        Assert.Equal(1f, t[0]);
        Assert.Equal(-1f, t[1]);
        Tolerances.Close(0, t[2], Tolerances.Elementwise);
    }

    [Fact]
    public void Kernels_ShortBuffers_Throw()
    {
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.BiasActivation(new float[5], 2, 3, new float[3], Activation.Relu));
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.BiasActivation(new float[6], 2, 3, new float[2], Activation.Relu));
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.ColumnSums(new float[6], 2, 3, new float[2]));
        Assert.Throws<ArgumentException>(() => ElementwiseKernels.ActivationBackward(new float[6], new float[5], new float[6], 2, 3, Activation.Tanh));
    }
}
