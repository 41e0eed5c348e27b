namespace Cluster.Compute;

/// <summary>The activation functions a dense layer can apply.</summary>
public enum Activation
{
    /// <summary>f(x) = x.</summary>
    Identity,

    /// <summary>Heaviside step (1 when x &gt;= 0): the perceptron's threshold; its derivative is taken as 0.</summary>
    Step,

    /// <summary>Logistic function 1 / (1 + e^-x).</summary>
    Sigmoid,

    /// <summary>Hyperbolic tangent.</summary>
    Tanh,

    /// <summary>max(0, x).</summary>
    Relu,

    /// <summary>Row-wise softmax; with cross-entropy the two are fused.</summary>
    Softmax,
}
