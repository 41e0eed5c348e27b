using System.Globalization;
using Cluster.Compute;
using Cluster.Compute.Backends;
using Cluster.Compute.Models;
using Cluster.Compute.Training;
using Cluster.Coordinator.Reports;
using Spectre.Console;

namespace Cluster.Coordinator.Runs;

/// <summary>What a finished run leaves behind: the final figures and per-epoch table, the model, the report and the plot.</summary>
public static class RunOutputs
{
    /// <summary>
    /// Prints the result, saves the model, writes the report and the plot; <paramref name="threadsPerWorker"/> is the
    /// report's threads: what the workers said they have, null when they differed.
    /// </summary>
    public static void Finish(TextWriter output, TrainSettings settings, PreparedRun run, IReadOnlyList<EpochRecord> history, BatchStats? test, TrainingState state, ComputeBackend backend, double seconds, Action<System.Text.Json.Utf8JsonWriter>? extra, int? threadsPerWorker)
    {
        var c = CultureInfo.InvariantCulture;
        if (!settings.Quiet)
        {
            WriteTable(output, history, run.Train.IsClassification);
        }

        if (state.StoppedEarly)
        {
            output.WriteLine(string.Create(c, $"Early stopping after epoch {history.Count}; kept the weights of epoch {state.BestEpoch}."));
        }

        if (test is { } t)
        {
            output.WriteLine(run.Train.IsClassification
                ? string.Create(c, $"Test accuracy: {t.Accuracy * 100:0.00}% (loss {t.MeanLoss:0.0000}) on {t.Count:N0} samples")
                : string.Create(c, $"Test RMSE: {t.Rmse(run.Model.OutputSize):0.00000} (loss {t.MeanLoss:0.00000}) on {t.Count:N0} samples"));
        }

        else if (history.Count > 0)
        {
            var last = history[^1];
            output.WriteLine(last.TrainAccuracy is { } a
                ? string.Create(c, $"Training accuracy: {a * 100:0.00}% (loss {last.TrainLoss:0.0000}); no test set")
                : string.Create(c, $"Training RMSE: {last.TrainRmse:0.00000} (loss {last.TrainLoss:0.00000}); no test set"));
        }

        // Each output is written even when another cannot be: a full disk must not cost the model because the report failed.
        var failures = new List<string>();
        void Write(string option, string path, Action write, string said)
        {
            try
            {
                write();
                Say(output, settings, said);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                failures.Add($"{option} {path}: {ex.Message}");
            }
        }

        if (settings.ModelPath is { } modelPath)
        {
            Write("--model", modelPath, () => ModelFile.Save(run.Model, modelPath), $"Model saved to {modelPath}");
        }

        if (settings.ReportPath is { } reportPath)
        {
            var description = new RunDescription
            {
                Dataset = run.DatasetName,
                Model = run.Model,
                Options = run.Options,
                Backend = backend.Name,
                Threads = threadsPerWorker,
                Classification = run.Train.IsClassification,
                FinalTest = test,
                TotalSeconds = seconds,
                State = state,
            };
            Write("--report", reportPath, () => TrainingReport.Write(reportPath, description, history, extra), $"Report written to {reportPath}");
        }

        if (PlotPath(settings) is { } plot)
        {
            Write("--plot", plot, () => TrainingPlot.Write(plot, history, $"{run.DatasetName} {run.Model.Shape()}"), $"Plot written to {plot}");
        }

        if (failures.Count > 0)
        {
            throw new IOException($"Training finished, but {string.Join("; ", failures)}.");
        }
    }

    /// <summary>Where the plot goes: --plot, else next to the report as .svg, else nowhere.</summary>
    private static string? PlotPath(TrainSettings settings) => settings.PlotPath ?? (settings.ReportPath is { } r ? Path.ChangeExtension(r, ".svg") : null);

    /// <summary>
    /// Checks, before anything is loaded or trained, that the model, report, plot and checkpoints can be written where
    /// asked: makes their folders and creates (and removes) the temporary file each save writes first. A run of hours
    /// must not end by losing its model to a mistyped path.
    /// </summary>
    public static void CheckWritable(TrainSettings settings)
    {
        (string Option, string? Path, bool IsFolder)[] outputs =
        [
            ("--model", settings.ModelPath, false), ("--report", settings.ReportPath, false), ("--plot", PlotPath(settings), false),
            ("--checkpoint-dir", settings.CheckpointDirectory, true), ("--resume", settings.Resume, true),
        ];
        // Two files written to one path: the later would replace the earlier (the model, under --report of its name).
        var files = outputs.Where(o => !o.IsFolder && o.Path is not null).Select(o => (o.Option, Full: Path.GetFullPath(o.Path!))).ToList();
        if (files.GroupBy(f => f.Full, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } clash)
        {
            var options = clash.Select(f => f.Option).ToList();
            var plotByDefault = options.Contains("--plot") && settings.PlotPath is null ? " (--plot by default: --report's name as .svg)" : "";
            throw new IOException($"{string.Join(" and ", options)} name the same file, {clash.Key}{plotByDefault}; the one written last would replace the other. Give each its own name; nothing was trained.");
        }

        // Nor may an output replace what the run reads, but --model may replace --init-model (training on from a model).
        (string Option, string? Path)[] inputs =
        [
            ("--dataset", string.Equals(settings.Dataset, "mnist", StringComparison.OrdinalIgnoreCase) ? null : settings.Dataset),
            ("--test-data", settings.TestData), ("--init-model", settings.InitModel),
        ];
        foreach (var (input, path) in inputs.Where(i => i.Path is not null))
        {
            if (files.FirstOrDefault(f => string.Equals(f.Full, Path.GetFullPath(path!), StringComparison.Ordinal) && (f.Option, input) != ("--model", "--init-model")) is { Option: { } output })
            {
                throw new IOException($"{output} names {input}'s file, {path}; writing it would replace it. Give it another name; nothing was trained.");
            }
        }

        foreach (var (option, path, isFolder) in outputs)
        {
            if (path is null)
            {
                continue;
            }

            try
            {
                var full = Path.GetFullPath(path);
                if (!isFolder && Directory.Exists(full))
                {
                    throw new IOException("it is a folder");
                }

                var folder = isFolder ? full : Path.GetDirectoryName(full)!;
                Directory.CreateDirectory(folder);
                using (File.Create(isFolder ? Path.Combine(folder, $".write-check-{Environment.ProcessId}.tmp") : full + ".tmp", 1, FileOptions.DeleteOnClose))
                {
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new IOException($"{option} {path} cannot be written ({ex.Message}); nothing was trained.", ex);
            }
        }
    }

    /// <summary>Name of the lock file a run holds in the folder it writes checkpoints to.</summary>
    internal const string CheckpointLockName = ".run.lock";

    /// <summary>
    /// Claims the folder the run writes checkpoints to (<c>--checkpoint-dir</c>, else <c>--resume</c>) before anything is
    /// trained, or returns null when it writes none. The claim is an exclusively opened lock file, which the operating
    /// system releases when the process ends however it ends, so a coordinator killed with -9 does not keep its
    /// successor out. Refused: a folder another run holds (two runs would prune each other's checkpoints, and a resume
    /// would take whichever wrote last), and a folder of another run's checkpoints that this run does not resume
    /// (checkpoints are kept by step, newest first, so the new run's would be removed as soon as written, and a later
    /// --resume would continue the old run).
    /// </summary>
    public static IDisposable? ClaimCheckpointFolder(TrainSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var folder = settings.CheckpointDirectory ?? settings.Resume;
        if (folder is null)
        {
            return null;
        }

        var option = settings.CheckpointDirectory is null ? "--resume" : "--checkpoint-dir";
        var full = Path.GetFullPath(folder);
        Directory.CreateDirectory(full);
        var lockPath = Path.Combine(full, CheckpointLockName);
        FileStream claim;
        try
        {
            // Removed when the run ends, leaving the folder as it was; one killed leaves it, unlocked, for the next to take.
            claim = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException ex)
        {
            throw new IOException($"{option} {folder} is in use by another run ({lockPath} is held); one folder of checkpoints takes one run at a time. Give this run another folder, or stop the other; nothing was trained.", ex);
        }

        try
        {
            var resuming = settings.Resume is { } resume && string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(resume)), Path.TrimEndingDirectorySeparator(full), StringComparison.Ordinal);
            if (!resuming && new CheckpointStore(full).Files() is { Count: > 0 } files)
            {
                throw new IOException($"--checkpoint-dir {folder} already holds checkpoints of another run (the newest is {Path.GetFileName(files[0])}); this run's would be removed in favour of them, and --resume would continue that run. Continue it with --resume {folder}, or give an empty folder; nothing was trained.");
            }

            return claim;
        }
        catch
        {
            claim.Dispose();
            throw;
        }
    }

    /// <summary>The per-epoch figures as a table: Spectre's on a terminal, plain text otherwise.</summary>
    public static void WriteTable(TextWriter output, IReadOnlyList<EpochRecord> history, bool classification)
    {
        string[] headers = classification
            ? ["epoch", "train loss", "train acc", "val loss", "val acc", "test loss", "test acc", "seconds", "samples/s"]
            : ["epoch", "train loss", "train rmse", "val loss", "test loss", "test rmse", "seconds", "samples/s"];
        var rows = history.Select(e => classification
            ? new[] { Int(e.Epoch), F(e.TrainLoss, 4), P(e.TrainAccuracy), F(e.ValidationLoss, 4), P(e.ValidationAccuracy), F(e.TestLoss, 4), P(e.TestAccuracy), F(e.Seconds, 2), Int((long)e.SamplesPerSecond) }
            : new[] { Int(e.Epoch), F(e.TrainLoss, 5), F(e.TrainRmse, 5), F(e.ValidationLoss, 5), F(e.TestLoss, 5), F(e.TestRmse, 5), F(e.Seconds, 2), Int((long)e.SamplesPerSecond) }).ToList();
        if (ConsoleProgress.IsTerminal(output))
        {
            var table = new Table().Border(TableBorder.Rounded);
            foreach (var h in headers)
            {
                table.AddColumn(new TableColumn(h).RightAligned());
            }

            foreach (var row in rows)
            {
                table.AddRow(row);
            }

            AnsiConsole.Write(table);
            return;
        }

        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        output.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadLeft(widths[i]))));
        foreach (var row in rows)
        {
            output.WriteLine(string.Join("  ", row.Select((v, i) => v.PadLeft(widths[i]))));
        }
    }

    private static string Int(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string F(double? v, int digits) => v is { } d ? d.ToString("F" + digits, CultureInfo.InvariantCulture) : "-";

    private static string P(double? v) => v is { } d ? (d * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "-";

    private static void Say(TextWriter output, TrainSettings settings, string message)
    {
        if (!settings.Quiet)
        {
            output.WriteLine(message);
        }
    }
}
