namespace Cluster.Compute;

/// <summary>Command-line and file names of the enums (kebab-case), parsed case-insensitively.</summary>
public static class Names
{
    /// <summary>Name of an activation.</summary>
    public static string Of(Activation a) => a switch
    {
        Activation.Identity => "identity",
        Activation.Step => "step",
        Activation.Sigmoid => "sigmoid",
        Activation.Tanh => "tanh",
        Activation.Relu => "relu",
        Activation.Softmax => "softmax",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    /// <summary>Name of a loss.</summary>
    public static string Of(LossKind l) => l switch
    {
        LossKind.MeanSquaredError => "mse",
        LossKind.BinaryCrossEntropy => "binary-cross-entropy",
        LossKind.CrossEntropy => "cross-entropy",
        _ => throw new ArgumentOutOfRangeException(nameof(l)),
    };

    /// <summary>Name of an initialisation.</summary>
    public static string Of(InitKind i) => i switch
    {
        InitKind.Auto => "auto",
        InitKind.XavierUniform => "xavier-uniform",
        InitKind.XavierNormal => "xavier-normal",
        InitKind.HeUniform => "he-uniform",
        InitKind.HeNormal => "he-normal",
        InitKind.SmallUniform => "small-uniform",
        InitKind.FanInUniform => "fan-in-uniform",
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    /// <summary>Parses an activation name.</summary>
    public static Activation ParseActivation(string s) => Parse(s, Enum.GetValues<Activation>(), Of, "activation");

    /// <summary>Parses a loss name (also accepts mean-squared-error, bce, ce).</summary>
    public static LossKind ParseLoss(string s) => s.ToLowerInvariant() switch
    {
        "mean-squared-error" => LossKind.MeanSquaredError,
        "bce" => LossKind.BinaryCrossEntropy,
        "ce" or "categorical-cross-entropy" => LossKind.CrossEntropy,
        _ => Parse(s, Enum.GetValues<LossKind>(), Of, "loss"),
    };

    /// <summary>Parses an initialisation name.</summary>
    public static InitKind ParseInit(string s) => Parse(s, Enum.GetValues<InitKind>(), Of, "initialisation");

    private static T Parse<T>(string s, T[] values, Func<T, string> name, string what)
    {
        foreach (var v in values)
        {
            if (string.Equals(name(v), s.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return v;
            }
        }

        throw new FormatException($"Unknown {what} '{s}'; expected one of: {string.Join(", ", values.Select(name))}.");
    }
}
