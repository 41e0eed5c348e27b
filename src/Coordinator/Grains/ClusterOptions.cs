namespace Cluster.Coordinator.Grains;

/// <summary>How the coordinator runs its members; every value has a command-line flag and environment twin.</summary>
public sealed record ClusterOptions
{
    /// <summary>Members needed to train; below it the run waits (pauses). [CLUSTER_MIN_WORKERS]</summary>
    public int MinWorkers { get; init; } = 1;

    /// <summary>Most members; further workers are told to wait. [CLUSTER_MAX_WORKERS]</summary>
    public int MaxWorkers { get; init; } = 1024;

    /// <summary>A step part not answered within this time is given to the other members. [CLUSTER_STEP_TIMEOUT_SECONDS]</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A member with no heartbeat for this long is dropped. [CLUSTER_LEASE_SECONDS]</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Samples per shard-data message.</summary>
    public int ShardChunkSamples { get; init; } = 4096;

    /// <summary>Let workers started with --data-dir load MNIST themselves.</summary>
    public bool AllowLocalData { get; init; } = true;

    /// <summary>
    /// Tensors on the Join stream as blocks: gradients without their all-zero blocks, weights as the blocks changed since
    /// the step the worker holds. The bits are the same either way. [CLUSTER_WIRE_TENSORS: blocks or dense]
    /// </summary>
    public bool BlockTensors { get; init; } = true;

    /// <summary>Folder of checkpoints; null writes none. [CLUSTER_CHECKPOINT_DIR]</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many steps (and at each epoch end); 0: epoch ends only. [CLUSTER_CHECKPOINT_EVERY]</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Checkpoints kept. [CLUSTER_CHECKPOINT_KEEP]</summary>
    public int CheckpointKeep { get; init; } = 3;

    /// <summary>Continue from the newest good checkpoint in this folder. [CLUSTER_RESUME]</summary>
    public string? ResumeDirectory { get; init; }

    /// <summary>
    /// On a cancelled run (SIGTERM, Ctrl+C): true leaves the workers retrying the address, for a coordinator started
    /// again with --resume to take them back (remote workers, as when Kubernetes replaces the coordinator's pod); false
    /// tells them the run stopped, and they exit (the worker processes of train --processes).
    /// </summary>
    public bool KeepWorkersOnCancel { get; init; }
}
