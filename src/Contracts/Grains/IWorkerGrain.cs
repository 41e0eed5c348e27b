using Cluster.Contracts.V1;

namespace Cluster.Contracts.Grains;

/// <summary>One step's work for a worker: weights of version <paramref name="Step"/> and the training-set indices of its part of the batch.</summary>
public sealed record StepCommand(long Step, int Epoch, long ShardGeneration, ReadOnlyMemory<float> Weights, ReadOnlyMemory<int> Indices)
{
    /// <summary>
    /// Whether an in-process worker may compute on the calling thread instead of handing the work to the thread pool:
    /// the coordinator sets it for the last member it calls in a round, whose thread would otherwise only wait. A
    /// worker behind a stream ignores it.
    /// </summary>
    public bool OnCallingThread { get; init; }
}

/// <summary>
/// A worker's answer: the sum of per-sample gradients (valid until the worker's next step) with loss and accuracy
/// sums, and how long it spent computing and encoding.
/// </summary>
public sealed record GradientReply(long Step, ReadOnlyMemory<float> GradientSum, int Count, double LossSum, long Correct, double SquaredErrorSum, double ComputeSeconds, double CodecSeconds);

/// <summary>
/// A worker grain: holds a shard of the training set and computes gradient sums. Calls come from the coordinator one
/// at a time; in embedded mode the reference is the grain itself, in remote mode a stream to its silo.
/// </summary>
public interface IWorkerGrain
{
    /// <summary>The worker's unique id.</summary>
    string WorkerId { get; }

    /// <summary>
    /// True for a worker in the coordinator's own process: its gradients are this process's numbers, not a stream's, so a
    /// NaN or infinity in them means the model diverged, not that the member is faulty. False for a worker behind a stream.
    /// </summary>
    bool InProcess => false;

    /// <summary>
    /// True for a worker in the caller's process with a core to itself, which spins between steps: the coordinator may
    /// then wait for its step by spinning briefly too, instead of giving up its thread. False for a worker behind a stream.
    /// </summary>
    bool SpinsBetweenSteps => false;

    /// <summary>
    /// True for a member that refuses its own worker's gradient or loss when it holds NaN or infinity, with a
    /// NonFiniteAnswerException (a stream's member checks each answer as it decodes it), so the step need not pass
    /// over the gradient again. False: the step checks the answers of a member that is not <see cref="InProcess"/>.
    /// </summary>
    bool ChecksFinite => false;

    /// <summary>
    /// For a worker in the coordinator's process built on the coordinator's own training set (that object): it reads
    /// its shard's rows from it in place, so the coordinator sends it only its ranges (a shard chunk marked
    /// <c>load_locally</c>) instead of encoding and copying the samples. Null for any other worker.
    /// </summary>
    object? TrainingSetInPlace => null;

    /// <summary>Admits (or asks to wait) the worker, handing it the model architecture and seed.</summary>
    Task AdmitAsync(Admission admission, CancellationToken cancellationToken);

    /// <summary>Delivers a chunk of the worker's shard; completes, for the last chunk, once the shard is ready.</summary>
    Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken);

    /// <summary>Computes the gradient sum of the command's samples at its weights.</summary>
    Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken);

    /// <summary>Tells the worker the run is over.</summary>
    Task StopAsync(Stop stop, CancellationToken cancellationToken);
}
