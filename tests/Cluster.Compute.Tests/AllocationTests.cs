using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Optim;

namespace Cluster.Compute.Tests;

public sealed class AllocationTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void TrainingStep_AfterWarmUp_AllocatesNothing(int threads)
    {
        var data = NetworkTests.Blobs(256, 1);
        var model = new Sequential(2, Sequential.Stack([64, 32], Activation.Relu, 3, Activation.Softmax, 0.2f), LossKind.CrossEntropy);
        model.Initialize(1);
        using var backend = new ManagedBackend(threads);
        var engine = new GradientEngine(model, backend, 64);
        var batch = new Batch(64, 2, 3);
        var gradient = new float[model.ParameterCount];
        var optimizer = new Adam(model.ParameterCount);
        var indices = Enumerable.Range(0, 64).ToArray();
        void Step()
        {
            batch.Gather(data, indices);
            engine.ComputeGradient(batch, model.Parameters, gradient, new DropoutKey(1, 0));
            Regularization.Apply(model, model.Parameters, gradient, 1e-4f, 1e-4f);
            optimizer.Step(model.Parameters, gradient, 0.01f);
        }

        Step();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++)
        {
            Step();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
