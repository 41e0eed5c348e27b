using System.Globalization;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Runs;

/// <summary>Prints one line per epoch (plain text, fit for logs and pipes).</summary>
public sealed class ConsoleProgress(TextWriter output, int epochs, bool quiet) : ITrainingObserver
{
    /// <inheritdoc/>
    public void OnEpochEnd(EpochRecord r)
    {
        if (quiet)
        {
            return;
        }

        output.WriteLine(Format(r, epochs));
    }

    /// <summary>True when <paramref name="output"/> is the process's own, undirected terminal.</summary>
    public static bool IsTerminal(TextWriter output) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");

    /// <summary>The one-line summary of an epoch.</summary>
    public static string Format(EpochRecord r, int epochs)
    {
        var c = CultureInfo.InvariantCulture;
        var line = string.Create(c, $"epoch {r.Epoch}/{epochs}  loss {r.TrainLoss:0.0000}");
        if (r.TrainAccuracy is { } ta)
        {
            line += string.Create(c, $"  acc {ta * 100:0.00}%");
        }

        if (r.TrainRmse is { } tr)
        {
            line += string.Create(c, $"  rmse {tr:0.0000}");
        }

        if (r.ValidationLoss is { } vl)
        {
            line += string.Create(c, $"  val loss {vl:0.0000}");
            if (r.ValidationAccuracy is { } va)
            {
                line += string.Create(c, $" acc {va * 100:0.00}%");
            }
        }

        if (r.TestLoss is { } sl)
        {
            line += string.Create(c, $"  test loss {sl:0.0000}");
            if (r.TestAccuracy is { } sa)
            {
                line += string.Create(c, $" acc {sa * 100:0.00}%");
            }

            if (r.TestRmse is { } sr)
            {
                line += string.Create(c, $" rmse {sr:0.0000}");
            }
        }

        return line + string.Create(c, $"  {r.Seconds:0.00}s  {r.SamplesPerSecond:N0} samples/s");
    }
}
