using System.Globalization;

namespace Cluster.Compute.Optim;

/// <summary>Learning rate per epoch: constant, step decay (times gamma every N epochs) or exponential decay (times gamma each epoch).</summary>
public sealed record LearningRateSchedule(string Kind, int StepEpochs = 1, double Gamma = 1.0)
{
    /// <summary>No decay.</summary>
    public static LearningRateSchedule Constant { get; } = new("constant");

    /// <summary>The rate for zero-based <paramref name="epoch"/>.</summary>
    public float RateAt(float baseRate, int epoch) => Kind switch
    {
        "step" => (float)(baseRate * Math.Pow(Gamma, epoch / StepEpochs)),
        "exp" => (float)(baseRate * Math.Pow(Gamma, epoch)),
        _ => baseRate,
    };

    /// <summary>Parses "constant", "step:N:GAMMA" or "exp:GAMMA".</summary>
    public static LearningRateSchedule Parse(string text)
    {
        var parts = text.Trim().ToLowerInvariant().Split(':');
        try
        {
            switch (parts[0])
            {
                case "constant" or "none" when parts.Length == 1:
                    return Constant;
                case "step" when parts.Length == 3:
                    var every = int.Parse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture);
                    var gamma = double.Parse(parts[2], NumberStyles.Float, CultureInfo.InvariantCulture);
                    return every >= 1 && gamma > 0 && double.IsFinite(gamma) ? new LearningRateSchedule("step", every, gamma) : throw new FormatException();
                case "exp" when parts.Length == 2:
                    var g = double.Parse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture);
                    return g > 0 && double.IsFinite(g) ? new LearningRateSchedule("exp", 1, g) : throw new FormatException();
            }
        }
        catch (FormatException)
        {
        }
        catch (OverflowException)
        {
        }

        throw new FormatException($"Bad learning-rate schedule '{text}'; use constant, step:EPOCHS:GAMMA (e.g. step:2:0.5) or exp:GAMMA (e.g. exp:0.9).");
    }

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        "step" => string.Create(CultureInfo.InvariantCulture, $"step:{StepEpochs}:{Gamma}"),
        "exp" => string.Create(CultureInfo.InvariantCulture, $"exp:{Gamma}"),
        _ => "constant",
    };
}
