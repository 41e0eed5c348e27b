using System.Globalization;
using Cluster.Compute.Training;
using Spectre.Console;

namespace Cluster.Coordinator.Runs;

/// <summary>Progress bars per epoch (samples/s, loss, ETA) on a terminal.</summary>
internal sealed class SpectreProgress(ProgressContext context, int epochs) : ITrainingObserver
{
    private ProgressTask? _task;
    private double _loss;
    private long _samples;
    private double _seconds;

    public void OnEpochStart(int epoch, int stepsInEpoch)
    {
        _task = context.AddTask($"epoch {epoch + 1}/{epochs}", maxValue: stepsInEpoch);
        (_loss, _samples, _seconds) = (0, 0, 0);
    }

    public void OnStep(in StepReport report)
    {
        if (_task is null)
        {
            return;
        }

        _loss = report.Stats.MeanLoss;
        _samples += report.Stats.Count;
        _seconds += report.Seconds;
        _task.Value = report.StepInEpoch;
        if (report.StepInEpoch % 20 == 0 || report.StepInEpoch == report.StepsInEpoch)
        {
            _task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {report.Epoch + 1}/{epochs}  loss {_loss:0.0000}  {(_seconds > 0 ? _samples / _seconds : 0):N0} samples/s");
        }
    }

    public void OnEpochEnd(EpochRecord record)
    {
        if (_task is null)
        {
            return;
        }

        var accuracy = record.TestAccuracy is { } a ? string.Create(CultureInfo.InvariantCulture, $"  test acc {a * 100:0.00}%") : "";
        _task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {record.Epoch}/{epochs}  loss {record.TrainLoss:0.0000}{accuracy}  {record.SamplesPerSecond:N0} samples/s");
        _task.StopTask();
    }

    /// <summary>Runs <paramref name="work"/> under live progress bars.</summary>
    public static Task<T> RunAsync<T>(int epochs, Func<ITrainingObserver, Task<T>> work) =>
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(ctx => work(new SpectreProgress(ctx, epochs)));
}
