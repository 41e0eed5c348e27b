using Cluster.Compute.Backends;
using Cluster.Compute.Data;

namespace Cluster.Compute.Training;

/// <summary>Computes gradients in this process, on one dataset held in memory.</summary>
public sealed class LocalGradientSource : IGradientSource
{
    private readonly Dataset _data;
    private readonly GradientEngine _engine;
    private readonly Batch _batch;
    private readonly ulong _seed;

    /// <summary>Creates a source for batches of up to <paramref name="capacity"/> samples of <paramref name="data"/>.</summary>
    public LocalGradientSource(Sequential model, Dataset data, ComputeBackend backend, int capacity, ulong seed)
    {
        _data = data;
        _engine = new GradientEngine(model, backend, capacity);
        _batch = new Batch(capacity, model.InputSize, model.OutputSize);
        _seed = seed;
    }

    /// <inheritdoc/>
    public ValueTask<BatchStats> ComputeAsync(StepWork work, CancellationToken cancellationToken)
    {
        _batch.Gather(_data, work.Indices.Span);
        return ValueTask.FromResult(_engine.ComputeGradient(_batch, work.Parameters.Span, work.GradientSum.Span, new DropoutKey(_seed, work.Epoch)));
    }
}
