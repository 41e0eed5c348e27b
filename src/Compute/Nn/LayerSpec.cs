namespace Cluster.Compute;

/// <summary>A layer as the user describes it, before input sizes are known: a dense layer or a dropout.</summary>
public sealed record LayerSpec(string Kind, int Units = 0, Activation Activation = Activation.Identity, float Rate = 0f, InitKind Init = InitKind.Auto)
{
    /// <summary>A dense layer.</summary>
    public static LayerSpec Dense(int units, Activation activation, InitKind init = InitKind.Auto) => new("dense", units, activation, 0f, init);

    /// <summary>A dropout layer.</summary>
    public static LayerSpec Dropout(float rate) => new("dropout", Rate: rate);
}
