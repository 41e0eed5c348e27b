using Cluster.Compute.Backends;
using Cluster.Compute.Data;
using Cluster.Compute.Training;

namespace Cluster.Compute.Benchmarks;

/// <summary>One measured training epoch.</summary>
/// <param name="Threads">The threads the backend was asked for.</param>
/// <param name="Parallelism">The threads it computed on: <paramref name="Threads"/>, up to the processor count.</param>
public sealed record TrainResult(string Backend, int Threads, int Parallelism, int Batch, double EpochSeconds, double SamplesPerSecond, long AllocatedBytesPerEpoch, int Gen0Collections, double TestAccuracy);

/// <summary>Times whole training epochs of a network on a dataset, after a warm-up epoch.</summary>
public static class TrainBenchmark
{
    /// <summary>
    /// Trains <paramref name="epochs"/> epochs and returns the fastest one's figures (the first includes JIT warm-up);
    /// <paramref name="cancellationToken"/> stops it between steps.
    /// </summary>
    public static TrainResult Measure(ComputeBackend backend, Dataset train, Dataset test, int[] hidden, int batch, int epochs = 2, ulong seed = 0, CancellationToken cancellationToken = default)
    {
        var model = new Sequential(train.FeatureCount, Sequential.Stack(hidden, Activation.Relu, train.ClassCount, Activation.Softmax), LossKind.CrossEntropy);
        model.Initialize(seed);
        var options = new TrainingOptions { Epochs = epochs, BatchSize = batch, LearningRate = 0.1f, Seed = seed };
        var source = new LocalGradientSource(model, train, backend, batch, seed);
        var trainer = new Trainer(model, options, source, train, null, null, backend);
        var meter = new EpochMeter();
        trainer.Observe(meter);
        trainer.RunAsync(cancellationToken).GetAwaiter().GetResult();
        var best = trainer.State.History.MinBy(e => e.Seconds)!;
        var index = trainer.State.History.ToList().IndexOf(best);
        var accuracy = trainer.Evaluate(test).Accuracy;
        return new TrainResult(backend.Name, backend.Threads, backend.Parallelism, batch, best.Seconds, best.SamplesPerSecond, meter.Allocated[index], meter.Collections[index], accuracy);
    }

    private sealed class EpochMeter : ITrainingObserver
    {
        private long _allocated;
        private int _collections;

        public List<long> Allocated { get; } = [];

        public List<int> Collections { get; } = [];

        public void OnEpochStart(int epoch, int stepsInEpoch)
        {
            _allocated = GC.GetTotalAllocatedBytes(precise: true);
            _collections = GC.CollectionCount(0);
        }

        public void OnEpochEnd(EpochRecord record)
        {
            // Evaluation has already run when this is called; it allocates nothing per step either.
            Allocated.Add(GC.GetTotalAllocatedBytes(precise: true) - _allocated);
            Collections.Add(GC.CollectionCount(0) - _collections);
        }
    }
}
