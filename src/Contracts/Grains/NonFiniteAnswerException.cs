namespace Cluster.Contracts.Grains;

/// <summary>
/// A member answered a step with a loss or gradient that is NaN or infinite, and its stream refused the answer. The
/// coordinator tells a faulty member (another answered with finite numbers) from a diverged model (none did).
/// </summary>
public sealed class NonFiniteAnswerException(string message) : Exception(message);
