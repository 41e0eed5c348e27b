namespace Cluster.Compute.Training;

/// <summary>Thrown when a step's gradient is NaN or infinite; the parameters are left as they were before the step.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);
