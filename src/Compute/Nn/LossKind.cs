namespace Cluster.Compute;

/// <summary>The losses a model can be trained with.</summary>
public enum LossKind
{
    /// <summary>Mean over outputs of (y - t)^2, averaged over samples.</summary>
    MeanSquaredError,

    /// <summary>Mean over outputs of -[t log y + (1 - t) log(1 - y)]; fused with a sigmoid output.</summary>
    BinaryCrossEntropy,

    /// <summary>-log softmax(z)[label]; needs a softmax output layer, with which it is fused.</summary>
    CrossEntropy,
}
