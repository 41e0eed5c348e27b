namespace Cluster.Compute.Training;

/// <summary>One step's request: compute the gradient sum of these training samples at these parameters.</summary>
/// <param name="Epoch">Zero-based epoch (keys dropout masks).</param>
/// <param name="Step">Global step number, the version of <paramref name="Parameters"/>.</param>
/// <param name="Indices">Dataset indices of the step's samples, in batch order.</param>
/// <param name="Parameters">The weights every sample of the step must see.</param>
/// <param name="GradientSum">Receives the sum of per-sample gradients (overwritten).</param>
public readonly record struct StepWork(int Epoch, long Step, ReadOnlyMemory<int> Indices, ReadOnlyMemory<float> Parameters, Memory<float> GradientSum);

/// <summary>
/// Whatever computes gradient sums for the trainer: the model on this thread, or a coordinator fanning a step out to
/// its workers. The trainer owns averaging and the optimizer, so both paths share one training loop.
/// </summary>
public interface IGradientSource
{
    /// <summary>Computes the step's gradient sum and its loss/accuracy sums.</summary>
    ValueTask<BatchStats> ComputeAsync(StepWork work, CancellationToken cancellationToken);
}
