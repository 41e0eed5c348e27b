using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Runs;

/// <summary>Data and model ready to train.</summary>
public sealed record PreparedRun(string DatasetName, Dataset Train, Dataset? Validation, Dataset? Test, Sequential Model, TrainingOptions Options);
