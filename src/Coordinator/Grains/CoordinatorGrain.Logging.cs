using Cluster.Compute.Training;
using Microsoft.Extensions.Logging;

namespace Cluster.Coordinator.Grains;

/// <summary>Progress hooks and the grain's log messages.</summary>
public sealed partial class CoordinatorGrain
{
    private sealed class Observer(CoordinatorGrain grain) : ITrainingObserver
    {
        public void OnStep(in StepReport report)
        {
            var (gather, compute, codec, sum) = grain._pendingTiming;
            grain.Timings.Add(report.Seconds, compute, codec, sum + Math.Max(0, report.Seconds - gather));
            grain._lastLoss = report.Stats.MeanLoss;
            lock (grain._sync)
            {
                grain._recent[grain._recentCount % grain._recent.Length] = (report.GlobalStep, report.Stats.MeanLoss);
                grain._recentCount++;
            }

            grain._samplesPerSecond = report.Seconds > 0 ? report.Stats.Count / report.Seconds : 0;
            var every = grain._options.CheckpointEvery;
            if (every > 0 && report.GlobalStep % every == 0 && report.StepInEpoch < report.StepsInEpoch)
            {
                grain.SaveCheckpoint();
            }
        }

        public void OnEpochEnd(EpochRecord record)
        {
            var accounting = grain._accounting.Close(record.Epoch, grain._resumedSamplesInEpoch);
            grain._resumedSamplesInEpoch = 0;
            if (accounting.Duplicates != 0 || accounting.Missing != 0)
            {
                grain.LogAccounting(record.Epoch, accounting.Duplicates, accounting.Missing);
            }

            grain.SaveCheckpoint();
            lock (grain._sync)
            {
                grain._history.Add(record);
            }

            grain._testAccuracy = record.TestAccuracy;
            grain.LogEpoch(record.Epoch, record.TrainLoss, record.TestAccuracy ?? double.NaN);
        }
    }

    private void LogAccounting(int epoch, int duplicates, int missing) => LogAccountingBroken(_logger, epoch, duplicates, missing);

    private void LogEpoch(int epoch, double loss, double accuracy) => LogEpochDone(_logger, epoch, loss, accuracy);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "Epoch {Epoch} sample accounting broken: {Duplicates} used twice, {Missing} not used")]
    private static partial void LogAccountingBroken(ILogger logger, int epoch, int duplicates, int missing);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Worker {WorkerId} joined from {Address}")]
    private static partial void LogJoined(ILogger logger, string workerId, string address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Worker {WorkerId} left: {Reason} (graceful: {Graceful})")]
    private static partial void LogLeft(ILogger logger, string workerId, string reason, bool graceful);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Worker {WorkerId} dropped: {Reason}")]
    private static partial void LogMemberFailed(ILogger logger, string workerId, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Waiting for workers: {Count} of at least {Minimum}")]
    private static partial void LogWaitingForWorkers(ILogger logger, int count, int minimum);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Shards planned over {Workers} workers ({Samples} samples)")]
    private static partial void LogPlanned(ILogger logger, int workers, int samples);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Reassigned {Samples} samples of step {Step} to the surviving workers")]
    private static partial void LogReassigned(ILogger logger, int samples, long step);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "Skipping corrupt checkpoint {Problem}")]
    private static partial void LogCorruptCheckpoint(ILogger logger, string problem);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "No usable checkpoint in {Directory}; starting from the beginning")]
    private static partial void LogNoCheckpoint(ILogger logger, string directory);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Resumed at step {Step} from {Directory}")]
    private static partial void LogResumed(ILogger logger, long step, string directory);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Checkpoint written: {Path}")]
    private static partial void LogCheckpoint(ILogger logger, string path);

    [LoggerMessage(EventId = 14, Level = LogLevel.Information, Message = "Stopped at step {Step}, which the newest checkpoint in {Directory} holds: --resume goes on from there")]
    private static partial void LogStoppedAt(ILogger logger, long step, string directory);

    [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "The checkpoint of the stopping run could not be written: {Reason}")]
    private static partial void LogCheckpointFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Epoch {Epoch} done: loss {Loss:0.0000}, test accuracy {Accuracy:P2}")]
    private static partial void LogEpochDone(ILogger logger, int epoch, double loss, double accuracy);
}
