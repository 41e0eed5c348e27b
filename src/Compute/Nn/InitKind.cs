namespace Cluster.Compute;

/// <summary>Weight initialisation schemes (biases start at zero).</summary>
public enum InitKind
{
    /// <summary>He uniform for ReLU layers, Xavier uniform otherwise.</summary>
    Auto,

    /// <summary>U(-a, a), a = sqrt(6 / (fanIn + fanOut)).</summary>
    XavierUniform,

    /// <summary>N(0, 2 / (fanIn + fanOut)).</summary>
    XavierNormal,

    /// <summary>U(-a, a), a = sqrt(6 / fanIn).</summary>
    HeUniform,

    /// <summary>N(0, 2 / fanIn).</summary>
    HeNormal,

    /// <summary>U(-0.1, 0.1), the classic small random start.</summary>
    SmallUniform,

    /// <summary>PyTorch's default for linear layers: weights and biases U(-a, a), a = 1 / sqrt(fanIn).</summary>
    FanInUniform,
}
