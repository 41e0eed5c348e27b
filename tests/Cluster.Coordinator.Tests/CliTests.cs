using System.Globalization;
using System.Text;
using System.Text.Json;
using Cluster.Coordinator.Cli;
using Cluster.Coordinator.Runs;

namespace Cluster.Coordinator.Tests;

public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-cli").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await CliApp.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private string Csv(string name, Func<int, string> row, int rows, string header)
    {
        var sb = new StringBuilder(header + "\n");
        for (var i = 0; i < rows; i++)
        {
            sb.Append(row(i)).Append('\n');
        }

        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    private string Classes(string name, int rows, int seed) => Csv(name, i =>
    {
        var r = new Random(seed + i);
        var cls = i % 3;
        var x = Math.Cos(cls * 2.1) * 2 + r.NextDouble() - 0.5;
        var y = Math.Sin(cls * 2.1) * 2 + r.NextDouble() - 0.5;
        return string.Create(CultureInfo.InvariantCulture, $"{x:0.####},{y:0.####},{new[] { "red", "green", "blue" }[cls]}");
    }, rows, "x,y,colour");

    [Theory]
    [InlineData("train")]
    [InlineData("coordinator")]
    [InlineData("worker")]
    [InlineData("evaluate")]
    [InlineData("predict")]
    [InlineData("summary")]
    [InlineData("example")]
    [InlineData("data")]
    [InlineData("bench")]
    public async Task Help_EveryCommand_Explains(string command)
    {
        var (code, output, _) = await RunAsync(command, "--help");
        Assert.Equal(0, code);
        Assert.Contains("Usage:", output);
        Assert.True(output.Length > 200, output);
    }

    [Fact]
    public async Task Help_ShowsEnvironmentTwins()
    {
        var (_, output, _) = await RunAsync("train", "--help");
        Assert.Contains("CLUSTER_EPOCHS", output);
        Assert.Contains("--layers", output);
        Assert.Contains("--workers", output);
    }

    [Fact]
    public async Task Train_CsvClassification_WritesReportModelAndPredicts()
    {
        var train = Classes("train.csv", 300, 1);
        var test = Classes("test.csv", 60, 1000);
        var report = Path.Combine(_dir, "report.json");
        var model = Path.Combine(_dir, "model.bin");
        var (code, output, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--test-data", test, "--layers", "16", "--epochs", "20",
            "--batch-size", "16", "--workers", "2", "--report", report, "--model", model, "--quiet");
        Assert.True(code == 0, error);
        Assert.Contains("Test accuracy", output);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var root = json.RootElement;
        Assert.Equal(2 * 16 + 16 + 16 * 3 + 3, root.GetProperty("parameters").GetInt32());
        Assert.Equal(20, root.GetProperty("epochs").GetArrayLength());
        var first = root.GetProperty("epochs")[0];
        foreach (var field in new[] { "epoch", "trainLoss", "trainAccuracy", "testLoss", "testAccuracy", "seconds", "samplesPerSecond" })
        {
            Assert.True(first.TryGetProperty(field, out _), field);
        }

        Assert.True(root.GetProperty("testAccuracy").GetDouble() > 0.9);
        Assert.Equal(2, root.GetProperty("workers").GetInt32());
        // Both in-process workers have the threads they were given, as they said in their hellos.
        var threads = Assert.Single(root.GetProperty("workerThreads").EnumerateArray()).GetInt32();
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), threads);
        Assert.Equal(threads, root.GetProperty("threadsPerWorker").GetInt32());
        Assert.Equal(threads, root.GetProperty("threads").GetInt32());
        Assert.Equal(root.GetProperty("backend").GetString(), Assert.Single(root.GetProperty("workerBackends").EnumerateArray()).GetString());
        Assert.True(root.GetProperty("stepBreakdown").GetProperty("steps").GetInt64() > 0);

        var (summaryCode, summary, _) = await RunAsync("summary", "--model", model);
        Assert.Equal(0, summaryCode);
        Assert.Contains("Dense(16, relu)", summary);
        // What predict and evaluate need of the data, from the model's metadata.
        Assert.Contains("Trained on: train.csv\nPredicts: label column colour, 3 classes: blue, green, red\nInput columns: x, y\nInput transform: (x - offset) * scale, one of each per input, fitted on train.csv\n", summary.ReplaceLineEndings("\n"));

        var (evalCode, eval, _) = await RunAsync("evaluate", "--model", model, "--dataset", test);
        Assert.Equal(0, evalCode);
        Assert.Contains("accuracy", eval);

        // Without --dataset, evaluate means MNIST: refused at once, not after fetching MNIST for a model of 2 inputs.
        var mnistDir = Path.Combine(_dir, "mnist");
        var (mnistCode, _, mnistError) = await RunAsync("evaluate", "--model", model, "--data-dir", mnistDir);
        Assert.Equal(1, mnistCode);
        Assert.Contains("The model takes 2 inputs (it was trained on train.csv); an MNIST image has 784. Give its data with --dataset FILE.csv.", mnistError);
        Assert.False(Directory.Exists(mnistDir));
        // A --label with MNIST is refused, not ignored.
        (mnistCode, _, mnistError) = await RunAsync("evaluate", "--model", model, "--data-dir", mnistDir, "--label", "colour");
        Assert.Equal(1, mnistCode);
        Assert.Contains("error: --label applies to a CSV --dataset; MNIST brings its own labels.", mnistError);
        Assert.False(Directory.Exists(mnistDir));

        // A model of 784 inputs trained on a CSV of pixels has its own input transform: MNIST's [0, 1] pixels are refused
        // before they are fetched, where before they were evaluated through no transform at all.
        var pixels = new Cluster.Compute.Sequential(784, [Cluster.Compute.LayerSpec.Dense(10, Cluster.Compute.Activation.Softmax)], Cluster.Compute.LossKind.CrossEntropy,
            new Cluster.Compute.ModelMetadata { Dataset = "pixels.csv", InputOffset = [.. Enumerable.Repeat(33f, 784)], InputScale = [.. Enumerable.Repeat(0.0125f, 784)] });
        var pixelModel = Path.Combine(_dir, "pixels.bin");
        Cluster.Compute.Models.ModelFile.Save(pixels, pixelModel);
        (mnistCode, _, mnistError) = await RunAsync("evaluate", "--model", pixelModel, "--data-dir", mnistDir);
        Assert.Equal(1, mnistCode);
        Assert.Contains("error: The model was trained on pixels.csv with an input transform of its own (offsets and scales fitted on its data), so MNIST's test set, with pixels scaled to [0, 1], is not the data it takes.", mnistError);
        Assert.False(Directory.Exists(mnistDir));
        // Nor does train start MNIST from it: the model saved at the end kept the CSV's transform, which evaluate and
        // predict then applied to inputs it was not trained through.
        (mnistCode, _, mnistError) = await RunAsync("train", "--init-model", pixelModel, "--data-dir", mnistDir);
        Assert.Equal(1, mnistCode);
        Assert.Contains("error: --init-model was trained on pixels.csv with an input transform of its own (offsets and scales fitted on its data), so MNIST's pixels, scaled to [0, 1], are not the data it takes.", mnistError);
        (mnistCode, _, mnistError) = await RunAsync("train", "--init-model", model, "--data-dir", mnistDir);
        Assert.Equal(1, mnistCode);
        Assert.Contains("error: --init-model takes 2 inputs (it was trained on train.csv); an MNIST image has 784.", mnistError);
        Assert.False(Directory.Exists(mnistDir));

        var input = Csv("input.csv", i => i == 0 ? "2,0" : "-1,1.7", 2, "x,y");
        var (predictCode, predictions, _) = await RunAsync("predict", "--model", model, "--input", input);
        Assert.Equal(0, predictCode);
        var lines = predictions.Trim().Split('\n');
        Assert.Equal("prediction,confidence", lines[0]);
        Assert.StartsWith("red,", lines[1]);
        Assert.StartsWith("green,", lines[2]);
        // --output over the input or the model is refused, and both stay as they were (before, the input was replaced).
        var inputBytes = File.ReadAllBytes(input);
        var modelBytes = File.ReadAllBytes(model);
        foreach (var (over, named) in new[] { (input, "--input"), (model, "--model") })
        {
            var (overCode, _, overError) = await RunAsync("predict", "--model", model, "--input", input, "--output", over);
            Assert.Equal(1, overCode);
            Assert.Contains($"error: --output names {named}'s file, {over}; the predictions would replace it.", overError);
        }

        Assert.Equal(inputBytes, File.ReadAllBytes(input));
        Assert.Equal(modelBytes, File.ReadAllBytes(model));
        var written = Path.Combine(_dir, "predictions.csv");
        Assert.Equal(0, (await RunAsync("predict", "--model", model, "--input", input, "--output", written)).Code);
        Assert.Equal(predictions.Trim(), File.ReadAllText(written).Trim());

        // The same rows with their columns the other way round: matched by name, the same predictions (before, y was
        // read as x and x as y). A column the model does not know is refused, naming both lists.
        var swapped = Csv("swapped.csv", i => i == 0 ? "0,2" : "1.7,-1", 2, "y,x");
        var (swappedCode, swappedPredictions, swappedError) = await RunAsync("predict", "--model", model, "--input", swapped);
        Assert.True(swappedCode == 0, swappedError);
        Assert.Equal(predictions, swappedPredictions);
        // A labelled file with quoted names, as spreadsheets write them: the label column is left out as it is when
        // unquoted, whatever it holds (blank, or a class the model does not know).
        var quoted = Csv("quoted.csv", i => i == 0 ? "\"\",2,0" : "\"purple\",-1,1.7", 2, "\"colour\",\"x\",\"y\"");
        var (quotedCode, quotedPredictions, quotedError) = await RunAsync("predict", "--model", model, "--input", quoted);
        Assert.True(quotedCode == 0, quotedError);
        Assert.Equal(predictions, quotedPredictions);
        var unknown = Csv("unknown.csv", _ => "0,2", 1, "y,z");
        var (unknownCode, _, unknownError) = await RunAsync("predict", "--model", model, "--input", unknown);
        Assert.Equal(1, unknownCode);
        Assert.Contains("unknown.csv's feature columns are y, z; the model takes x, y.", unknownError);
        var swappedTest = Path.Combine(_dir, "swapped-test.csv");
        File.WriteAllLines(swappedTest, File.ReadAllLines(test).Select(l => string.Join(',', l.Split(',') is var f ? new[] { f[2], f[1], f[0] } : [])));
        var (swappedEvalCode, swappedEval, _) = await RunAsync("evaluate", "--model", model, "--dataset", swappedTest);
        Assert.Equal(0, swappedEvalCode);
        Assert.Equal(eval.Replace("test.csv", "swapped-test.csv", StringComparison.Ordinal), swappedEval);
    }

    [Fact]
    public async Task Train_CsvRegression_ReportsRmseAndNullAccuracy()
    {
        var train = Csv("reg.csv", i => string.Create(CultureInfo.InvariantCulture, $"{i / 50.0:0.###},{Math.Sin(i / 50.0):0.#####}"), 150, "x,y");
        var report = Path.Combine(_dir, "reg.json");
        var (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "y", "--test-data", train, "--layers", "16", "--activation", "tanh",
            "--optimizer", "adam", "--lr", "0.01", "--epochs", "60", "--batch-size", "10", "--workers", "1", "--report", report, "--quiet");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("testAccuracy").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("epochs")[0].GetProperty("trainAccuracy").ValueKind);
        Assert.True(json.RootElement.GetProperty("rmse").GetDouble() < 0.15);
    }

    [Fact]
    public async Task Train_PlotNextToReport_AndPngWhenAsked()
    {
        var train = Classes("p.csv", 90, 1);
        var report = Path.Combine(_dir, "out", "run.json");
        var (code, output, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "3", "--workers", "1", "--report", report);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(Path.Combine(_dir, "out", "run.svg")));
        Assert.Contains("Plot written to", output);
        Assert.Contains("train loss", output);
        var png = Path.Combine(_dir, "chart.png");
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "2", "--workers", "1", "--plot", png, "--quiet");
        Assert.True(code == 0, error);
        Assert.Equal(0x89, File.ReadAllBytes(png)[0]);
    }

    [Theory]
    [InlineData(0, null, 2, 2, 1)]
    [InlineData(0, 2, 2, 1, 2)]
    [InlineData(0, 1, 2, 2, 1)]
    [InlineData(0, 4, 2, 1, 4)]
    [InlineData(0, 2, 8, 4, 2)]
    [InlineData(0, 3, 8, 2, 3)]
    [InlineData(3, null, 2, 3, 1)]
    [InlineData(1, null, 8, 1, 8)]
    [InlineData(2, 3, 8, 2, 3)]
    public void Layout_ThreadsAloneSetHowManyWorkersShareTheProcessors(int workers, int? threads, int processors, int expectedWorkers, int expectedThreads)
    {
        Assert.Equal((expectedWorkers, expectedThreads), TrainCommand.Layout(workers, threads, processors));
    }

    [Fact]
    public async Task Train_ThreadsAlone_TrainsWithOneWorkerPerThatManyProcessors()
    {
        // --threads as many as the processors: one worker of that many threads, not one such worker per processor.
        var train = Classes("threads.csv", 60, 1);
        var report = Path.Combine(_dir, "threads.json");
        var (code, output, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "1", "--threads", $"{Environment.ProcessorCount}", "--report", report);
        Assert.True(code == 0, error);
        Assert.DoesNotContain("take turns", output);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        Assert.Equal(1, json.RootElement.GetProperty("workers").GetInt32());
        Assert.Equal(Environment.ProcessorCount, json.RootElement.GetProperty("threads").GetInt32());

        // More workers than processors are trained as asked, with a note that they take turns.
        (code, output, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "1", "--workers", $"{Environment.ProcessorCount + 1}");
        Assert.True(code == 0, error);
        Assert.Contains($"Note: {Environment.ProcessorCount + 1} workers of 1 thread each compute on up to {Environment.ProcessorCount + 1} threads at once", output);
    }

    [Theory]
    [InlineData(2, 1, 2, false)]
    [InlineData(1, 8, 2, false)]
    [InlineData(3, 1, 2, true)]
    [InlineData(2, 2, 2, true)]
    [InlineData(4, 2, 8, false)]
    public void Oversubscribed_NotesMoreComputeThreadsThanProcessors(int workers, int threads, int processors, bool noted)
    {
        Assert.Equal(noted, ClusterRunner.Oversubscribed(workers, threads, processors) is not null);
    }

    [Fact]
    public async Task Train_Quiet_PrintsOnlyTheResult()
    {
        var train = Classes("q.csv", 60, 1);
        var (code, output, _) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "2", "--workers", "1", "--quiet");
        Assert.Equal(0, code);
        Assert.DoesNotContain("epoch 1/2", output);
        Assert.StartsWith("Training accuracy", Assert.Single(output.Trim().Split('\n')));
    }

    [Fact]
    public async Task Train_BadOptions_FailWithClearMessages()
    {
        var train = Classes("t.csv", 30, 1);
        var (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "nope");
        Assert.Equal(1, code);
        Assert.Contains("no column named 'nope'", error);
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--layers", "12,x");
        Assert.Equal(1, code);
        Assert.Contains("--layers", error);
        // Before, "12,,4" was 12,4 and "12," was 12 without a word.
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--layers", "12,,4");
        Assert.Equal(1, code);
        Assert.Contains("an empty entry is not one", error);
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--optimizer", "rmsprop");
        Assert.Equal(1, code);
        Assert.Contains("sgd, momentum or adam", error);
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--early-stopping", "2");
        Assert.Equal(1, code);
        Assert.Contains("--validation-split", error);
        (code, _, error) = await RunAsync("train", "--dataset", Path.Combine(_dir, "missing.csv"), "--label", "y");
        Assert.Equal(1, code);
        Assert.Contains("not found", error);
        // Said for a person: no " (Parameter 'name')" or "Actual value was" after the message.
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--backend", "cuda");
        Assert.Equal(1, code);
        Assert.Equal("error: Unknown backend 'cuda'; use one of: auto, managed, openblas.", error.Trim());
        (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--validation-split", "1.5");
        Assert.Equal(1, code);
        Assert.Equal("error: --validation-split must be at least 0 and less than 1, not 1.5.", error.Trim());
    }

    [Theory]
    [InlineData("--seed takes a whole number, 0 or more; '-1' is not one.", " train --help'", "train", "--seed", "-1")]
    [InlineData("--epochs takes a whole number; 'five' is not one.", " train --help'", "train", "--epochs", "five")]
    [InlineData("--lr takes a number (e.g. 0.1 or 1e-3); '0,1' is not one.", " train --help'", "train", "--lr", "0,1")]
    [InlineData("Unrecognized command or argument '--sed'. Did you mean '--seed'?", " train --help'", "train", "--sed", "3")]
    [InlineData("Unrecognized command or argument '--thread'. Did you mean '--threads'?", " bench gemm --help'", "bench", "gemm", "--thread", "2")]
    [InlineData("Unrecognized command or argument 'trian'. Did you mean 'train'?", " --help' for its commands and options.", "trian")]
    [InlineData(" bench' needs one of its commands: gemm, train, cluster.", " bench --help'", "bench")]
    [InlineData("Unrecognized command or argument 'xyz'.", " summary --help'", "summary", "--model", "m.bin", "xyz")]
    public async Task ParseError_SaysWhatIsWrongInTheCommandLinesWords_OnStandardError_WithoutTheWholeHelp(string said, string pointer, params string[] args)
    {
        var (code, output, error) = await RunAsync(args);
        Assert.Equal(1, code);
        // Before: "Cannot parse argument '-1' for option '--seed' as expected type 'System.UInt64'." and the whole help on
        // standard output; a mistyped option or command had no suggestion.
        Assert.StartsWith("error: ", error);
        Assert.EndsWith(said, error.Split('\n')[0].TrimEnd());
        // The root's name is the executable's ("cluster"; here, the test host's).
        Assert.Contains(pointer, error.Split('\n')[^2]);
        Assert.DoesNotContain("System.", error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task EnvironmentTwin_NumberWithACommaForItsPoint_IsRefused_NotReadAsThousands()
    {
        // Before, CLUSTER_LR=0,1 (as --lr 0,1) trained with a learning rate of 1.
        Environment.SetEnvironmentVariable("CLUSTER_LR", "0,1");
        try
        {
            var (code, _, error) = await RunAsync("train", "--dataset", Classes("comma.csv", 30, 1), "--label", "colour", "--quiet");
            Assert.Equal(1, code);
            Assert.Contains("CLUSTER_LR='0,1' is not a number (e.g. 0.1 or 1e-3)", error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTER_LR", null);
        }
    }

    [Fact]
    public async Task ParseError_NoArgumentsAtAll_StillShowsTheHelp()
    {
        var (code, output, _) = await RunAsync();
        Assert.Equal(1, code);
        Assert.Contains("train", output);
        Assert.Contains("Description:", output);
    }

    [Fact]
    public async Task Worker_BadBackendOrDataDir_FailsBeforeDialling()
    {
        // Before: an unknown backend was an unhandled exception with its stack trace; a --data-dir without MNIST (or
        // with a corrupt copy) was found only once admitted, and the worker joined again and again.
        string[] worker = ["worker", "--coordinator", "http://127.0.0.1:9", "--connect-timeout-seconds", "0.5"];
        var (code, _, error) = await RunAsync([.. worker, "--backend", "cuda"]);
        Assert.Equal(1, code);
        Assert.Equal("error: --backend must be one of auto, managed, openblas, not 'cuda'.", error.Trim());
        var dataDir = Path.Combine(_dir, "mnist");
        Directory.CreateDirectory(dataDir);
        (code, _, error) = await RunAsync([.. worker, "--data-dir", dataDir]);
        Assert.Equal(1, code);
        Assert.Contains($"MNIST file train-images-idx3-ubyte (or train-images-idx3-ubyte.gz) is missing from {dataDir}", error);
        File.WriteAllText(Path.Combine(dataDir, "train-images-idx3-ubyte"), "not images");
        File.WriteAllText(Path.Combine(dataDir, "train-labels-idx1-ubyte"), "not labels");
        (code, _, error) = await RunAsync([.. worker, "--data-dir", dataDir]);
        Assert.Equal(1, code);
        Assert.Contains("train-images-idx3-ubyte is corrupt: its SHA-256 is", error);
        // It said "Delete it and run 'cluster data fetch mnist --force'": --force replaces the files as they are, and
        // without --data-dir it fetched into the default folder, not this one.
        Assert.Contains($"Fetch the files again with 'cluster data fetch mnist --data-dir {dataDir} --force' (it replaces them), or point --data-dir at good files.", error);
    }

    [Theory]
    [InlineData(254)]
    [InlineData(0)]
    public async Task Worker_IdTheCoordinatorWouldRefuse_FailsBeforeDialling(int length)
    {
        // Before, the worker dialled, was refused at its hello, retried for its connect timeout (120 s by default) and
        // then said the coordinator could not be reached. The address is never dialled: nothing listens there.
        var id = length == 0 ? "   " : new string('w', length);
        var (code, _, error) = await RunAsync("worker", "--coordinator", "http://127.0.0.1:9", "--worker-id", id, "--connect-timeout-seconds", "600");
        Assert.Equal(1, code);
        Assert.Contains("--worker-id: A worker id must have 1 to 253 characters", error);
        (code, _, error) = await RunAsync("worker", "--coordinator", "http://127.0.0.1:9", "--worker-id", new string('w', 253), "--connect-timeout-seconds", "0.5");
        Assert.Equal(2, code);
        Assert.DoesNotContain("--worker-id", error);
    }

    [Theory]
    [InlineData("--model", "blocker/model.bin")]
    [InlineData("--report", "blocker/run.json")]
    [InlineData("--plot", "blocker/run.svg")]
    [InlineData("--checkpoint-dir", "blocker/checkpoints")]
    [InlineData("--model", ".")]
    public async Task Train_AnOutputThatCannotBeWritten_FailsBeforeTraining(string option, string path)
    {
        // A file where a folder should be. Before, the run trained to the end and then lost its model (or report) to it.
        File.WriteAllText(Path.Combine(_dir, "blocker"), "a file");
        var report = Path.Combine(_dir, "fine.json");
        string[] args = ["train", "--dataset", Classes("w.csv", 30, 1), "--label", "colour", "--epochs", "1", option, Path.Combine(_dir, path)];
        var (code, output, error) = await RunAsync(option == "--report" ? args : [.. args, "--report", report]);
        Assert.Equal(1, code);
        Assert.Contains($"error: {option} {Path.Combine(_dir, path)} cannot be written", error);
        Assert.Contains("nothing was trained", error);
        Assert.DoesNotContain("Training", output);
        Assert.False(File.Exists(report));
        Assert.Equal(["blocker", "w.csv"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("--momentum 0.5", "--momentum applies to --optimizer momentum, and the optimizer is sgd, which would not use it")]
    [InlineData("--optimizer adam --momentum 0.95", "--momentum applies to --optimizer momentum, and the optimizer is adam, which would not use it")]
    [InlineData("--label digit", "--label applies to a CSV --dataset; MNIST brings its own labels")]
    [InlineData("--task regression", "--task applies to a CSV --dataset")]
    [InlineData("--test-data mine.csv", "--test-data applies to a CSV --dataset")]
    [InlineData("--standardize false", "--standardize applies to a CSV --dataset")]
    [InlineData("--checkpoint-every 100", "--checkpoint-every needs --checkpoint-dir (or --resume): without one, no checkpoint is written.")]
    [InlineData("--checkpoint-keep 5", "--checkpoint-keep needs --checkpoint-dir (or --resume)")]
    [InlineData("--wire-tensors dense", "--wire-tensors applies to tensors between worker processes (train --processes, or coordinator)")]
    [InlineData("--workers 2 --shared-memory off", "--shared-memory applies to tensors between worker processes")]
    public async Task Train_AnOptionTheRunWouldNotUse_IsRefusedBeforeFetching(string options, string expected)
    {
        // Before, each was ignored: sgd trained without momentum, MNIST's test set stood in for a --test-data file that
        // was never opened, and no checkpoint was written.
        var mnist = Path.Combine(_dir, "mnist");
        var (code, output, error) = await RunAsync(["train", .. options.Split(' '), "--data-dir", mnist]);
        Assert.Equal(1, code);
        Assert.Contains("error: " + expected, error);
        Assert.DoesNotContain("accuracy", output);
        Assert.False(Directory.Exists(mnist), "nothing was fetched");
    }

    [Fact]
    public async Task Coordinator_Threads_IsRefused_AsItsWorkersHaveTheirOwn()
    {
        // Before, it was taken and ignored, and the report gave it as every remote worker's threads.
        var mnist = Path.Combine(_dir, "mnist");
        var (code, output, error) = await RunAsync("coordinator", "--threads", "4", "--listen", "http://127.0.0.1:0", "--data-dir", mnist);
        Assert.Equal(1, code);
        Assert.Contains("error: --threads sets the compute threads of train's own workers; a coordinator's workers each have their own (cluster worker --threads N)", error);
        Assert.DoesNotContain("listening", output);
        Assert.False(Directory.Exists(mnist), "nothing was fetched");
        // Its help says so; train's keeps its own.
        Assert.Contains("Not a coordinator's: each worker takes its own", (await RunAsync("coordinator", "--help")).Out);
        Assert.Contains("Compute threads per worker", (await RunAsync("train", "--help")).Out);
    }

    [Theory]
    [InlineData("--optimizer momentum --momentum 0.5")]
    [InlineData("--momentum 0.5 --optimizer MOMENTUM")]
    [InlineData("--task classification --standardize false --checkpoint-every 2 --checkpoint-keep 1 --checkpoint-dir ckpt")]
    [InlineData("--checkpoint-every 2 --resume ckpt")]
    public async Task Train_TheSameOptions_WhereTheRunUsesThem_AreTaken(string options)
    {
        var args = options.Split(' ').Select(a => a == "ckpt" ? Path.Combine(_dir, a) : a);
        var data = Classes("w.csv", 40, 1);
        var (code, output, error) = await RunAsync(["train", "--dataset", data, "--label", "colour", "--epochs", "1", "--batch-size", "8", "--quiet", .. args]);
        Assert.True(code == 0, error);
        Assert.Contains("accuracy", output);
    }

    [Theory]
    [InlineData("--model run.json --report run.json", "--model and --report name the same file")]
    [InlineData("--model run.svg --report run.json", "--model and --plot name the same file")]
    [InlineData("--report run.json --plot run.json", "--report and --plot name the same file")]
    [InlineData("--model run.png --plot run.png", "--model and --plot name the same file")]
    [InlineData("--model w.csv", "--model names --dataset's file")]
    [InlineData("--report w.csv", "--report names --dataset's file")]
    [InlineData("--test-data t.csv --plot t.csv", "--plot names --test-data's file")]
    [InlineData("--init-model t.csv --report t.csv", "--report names --init-model's file")]
    public async Task Train_AnOutputNamingAnotherOutputOrAnInput_IsRefusedBeforeTraining(string options, string expected)
    {
        // Before, the later write replaced the earlier: --model run.json --report run.json left a report and no model.
        // So was the training or test file under an output of its name.
        var data = Classes("w.csv", 30, 1);
        var test = Classes("t.csv", 10, 2);
        var before = Directory.GetFiles(_dir).ToDictionary(f => f, File.ReadAllBytes);
        var args = options.Split(' ').Select(a => a.StartsWith("run.", StringComparison.Ordinal) || a.EndsWith(".csv", StringComparison.Ordinal) ? Path.Combine(_dir, a) : a);
        var (code, output, error) = await RunAsync(["train", "--dataset", data, "--label", "colour", "--epochs", "1", .. args]);
        Assert.Equal(1, code);
        Assert.Contains("error: " + expected, error);
        Assert.Contains("nothing was trained", error);
        Assert.DoesNotContain("accuracy", output);
        Assert.Equal(["t.csv", "w.csv"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(before, f => Assert.Equal(f.Value, File.ReadAllBytes(f.Key)));
    }

    [Fact]
    public async Task Train_ModelSavedOverItsInitModel_IsTaken()
    {
        // Training on from a model and saving it in its place is a use, unlike the outputs refused above.
        var data = Classes("w.csv", 30, 1);
        var model = Path.Combine(_dir, "m.bin");
        string[] run = ["train", "--dataset", data, "--label", "colour", "--epochs", "1", "--layers", "8", "--model", model, "--quiet"];
        var (code, _, error) = await RunAsync(run);
        Assert.True(code == 0, error);
        var first = File.ReadAllBytes(model);
        (code, _, error) = await RunAsync([.. run, "--init-model", model]);
        Assert.True(code == 0, error);
        Assert.NotEqual(first, File.ReadAllBytes(model));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Train_ACheckpointFolderOfAnotherRun_IsRefusedUnlessResumed_AndItsCheckpointsStay(bool resumingElsewhere)
    {
        var data = Classes("w.csv", 40, 1);
        var folder = Path.Combine(_dir, "checkpoints");
        string[] run = ["train", "--dataset", data, "--label", "colour", "--batch-size", "4", "--checkpoint-every", "3", "--quiet"];
        var (code, _, error) = await RunAsync([.. run, "--epochs", "2", "--checkpoint-dir", folder]);
        Assert.True(code == 0, error);
        var before = Directory.GetFiles(folder, "checkpoint-*").Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))).ToList();
        Assert.NotEmpty(before);

        // Before, a new run wrote its checkpoints there and removed each at once (the older run's had higher steps), and a
        // later --resume continued the older run. So did a run resumed from elsewhere that wrote there.
        var other = Path.Combine(_dir, "other");
        string[] again = resumingElsewhere ? [.. run, "--epochs", "3", "--resume", other, "--checkpoint-dir", folder] : [.. run, "--epochs", "3", "--checkpoint-dir", folder];
        var report = Path.Combine(_dir, "again.json");
        (code, var output, error) = await RunAsync([.. again, "--report", report]);
        Assert.Equal(1, code);
        Assert.Contains($"error: --checkpoint-dir {folder} already holds checkpoints of another run (the newest is {Path.GetFileName(before[^1].f)})", error);
        Assert.Contains($"Continue it with --resume {folder}", error);
        Assert.Contains("nothing was trained", error);
        Assert.DoesNotContain("accuracy", output);
        Assert.False(File.Exists(report));
        Assert.Equal(before.Select(b => b.f), Directory.GetFiles(folder, "checkpoint-*").Order(StringComparer.Ordinal));
        Assert.All(before, b => Assert.Equal(b.Item2, File.ReadAllBytes(b.f)));

        // Resumed, the same folder goes on: one more epoch, and checkpoints of its later steps.
        (code, output, error) = await RunAsync([.. run, "--epochs", "3", "--resume", folder]);
        Assert.True(code == 0, error);
        Assert.Contains(Directory.GetFiles(folder, "checkpoint-*"), f => string.CompareOrdinal(Path.GetFileName(f), Path.GetFileName(before[^1].f)) > 0);
    }

    [Theory]
    [InlineData("classification")]
    [InlineData("regression")]
    public async Task Train_AReportNamedCsv_IsThePerEpochHistoryAsCsv_WithTheJsonReportsFigures(string task)
    {
        // Before, --report history.csv wrote JSON into a file named .csv.
        var data = task == "classification"
            ? Classes("history.csv", 60, 4)
            : Csv("history.csv", i => string.Create(CultureInfo.InvariantCulture, $"{i * 0.1:0.0},{Math.Sin(i * 0.1):0.####}"), 60, "x,colour");
        string[] run = ["train", "--dataset", data, "--label", "colour", "--task", task, "--layers", "4", "--epochs", "3", "--batch-size", "8", "--validation-split", "0.25", "--quiet"];
        var csv = Path.Combine(_dir, "report.csv");
        var json = Path.Combine(_dir, "report.json");
        var (code, _, error) = await RunAsync([.. run, "--report", csv]);
        Assert.True(code == 0, error);
        (code, _, error) = await RunAsync([.. run, "--report", json]);
        Assert.True(code == 0, error);

        var lines = File.ReadAllLines(csv);
        var header = lines[0].Split(',');
        string[] expected = task == "classification"
            ? ["epoch", "trainLoss", "trainAccuracy", "validationLoss", "validationAccuracy", "testLoss", "testAccuracy", "seconds", "samplesPerSecond", "learningRate", "steps", "samples"]
            : ["epoch", "trainLoss", "trainAccuracy", "validationLoss", "validationAccuracy", "testLoss", "testAccuracy", "trainRmse", "testRmse", "seconds", "samplesPerSecond", "learningRate", "steps", "samples"];
        Assert.Equal(expected, header);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var epochs = doc.RootElement.GetProperty("epochs").EnumerateArray().ToList();
        Assert.Equal(3, epochs.Count);
        Assert.Equal(epochs.Count + 1, lines.Length);
        for (var i = 0; i < epochs.Count; i++)
        {
            var row = lines[i + 1].Split(',');
            Assert.Equal(header.Length, row.Length);
            foreach (var (name, field) in header.Zip(row))
            {
                if (name is "seconds" or "samplesPerSecond")
                {
                    Assert.True(double.Parse(field, CultureInfo.InvariantCulture) > 0, $"{name} of epoch {i + 1}: {field}");
                    continue;
                }

                // The same seed gives the same figures; null in JSON is an empty field.
                var value = epochs[i].GetProperty(name);
                Assert.True(value.ValueKind == JsonValueKind.Null ? field.Length == 0 : double.Parse(field, CultureInfo.InvariantCulture) == value.GetDouble(),
                    $"{name} of epoch {i + 1}: {field} in the CSV, {value.GetRawText()} in the JSON");
            }
        }

        Assert.Equal("0.1", epochs[0].GetProperty("learningRate").GetRawText());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Train_StoppedBySignal_SaysTheStepItStoppedAt_AndWhetherACheckpointHoldsIt(bool checkpoints)
    {
        // Before, Ctrl+C printed "cancelled" alone: the step, and whether --resume could go on from it, went unsaid.
        var data = Classes("stop.csv", 300, 11);
        var folder = Path.Combine(_dir, "stopped");
        var model = Path.Combine(_dir, "stopped.bin");
        string[] run = ["train", "--dataset", data, "--label", "colour", "--layers", "8", "--batch-size", "10", "--model", model];
        using var stop = new CancellationTokenSource();
        var output = new CancelsOn("epoch 3/", stop);
        var error = new StringWriter();
        var code = await CliApp.RunAsync(checkpoints ? [.. run, "--epochs", "200", "--checkpoint-dir", folder] : [.. run, "--epochs", "200"], output, error, stop.Token);
        Assert.Equal(130, code);
        Assert.Contains("cancelled", error.ToString());
        Assert.False(File.Exists(model));
        var said = output.ToString();
        Assert.DoesNotContain("epoch 200/", said);
        if (!checkpoints)
        {
            Assert.Matches(@"Stopped at step [1-9]\d*, .*\. Nothing was kept: a stopped run writes no model or report, and only a run with --checkpoint-dir leaves a checkpoint that --resume continues\.", said);
            return;
        }

        var newest = Directory.GetFiles(folder, "checkpoint-*.bin").Max(StringComparer.Ordinal)!;
        var step = long.Parse(Path.GetFileNameWithoutExtension(newest)["checkpoint-".Length..], CultureInfo.InvariantCulture);
        Assert.Contains($"Stopped at step {step}, ", said);
        Assert.Contains($"The newest checkpoint in {folder} holds that step: --resume {folder} goes on from there.", said);
        var (again, resumed, resumeError) = await RunAsync([.. run, "--epochs", "4", "--resume", folder]);
        Assert.True(again == 0, resumeError);
        Assert.Contains($"Resumed from the checkpoint at step {step} ", resumed);
        Assert.True(File.Exists(model));
    }

    [Fact]
    public void DescribeStop_ACheckpointThatCouldNotBeWritten_SaysResumeGoesBack()
    {
        var state = new Cluster.Compute.Training.TrainingState { Epoch = 2, StepInEpoch = 5, GlobalStep = 65 };
        Assert.Equal("Stopped at step 65, in epoch 3 of 10 (after 5 of its 30 steps). Its checkpoint could not be written to ck (the warning above says why), so --resume would go back to an earlier checkpoint, or start afresh. A stopped run writes no model or report.",
            ClusterRunner.DescribeStop(state, 10, 30, "ck", null));
        state.StepInEpoch = 0;
        state.GlobalStep = 60;
        Assert.StartsWith("Stopped at step 60, at the end of epoch 2 of 10. The newest checkpoint in ck holds", ClusterRunner.DescribeStop(state, 10, 30, "ck", "ck"));
        Assert.Equal("Stopped before the first step: nothing was trained, and nothing was written.", ClusterRunner.DescribeStop(new Cluster.Compute.Training.TrainingState(), 10, 30, "ck", null));
    }

    /// <summary>Output that cancels <paramref name="stop"/> once <paramref name="text"/> has been written, as Ctrl+C would then.</summary>
    private sealed class CancelsOn(string text, CancellationTokenSource stop) : StringWriter(CultureInfo.InvariantCulture)
    {
        public override void Write(string? value)
        {
            base.Write(value);
            Check();
        }

        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            Check();
        }

        private void Check()
        {
            if (ToString().Contains(text, StringComparison.Ordinal))
            {
                stop.Cancel();
            }
        }
    }

    [Theory]
    [InlineData("--checkpoint-dir")]
    [InlineData("--resume")]
    public async Task Train_ACheckpointFolderInUseByAnotherRun_IsRefused(string option)
    {
        var folder = Path.Combine(_dir, "checkpoints");
        Directory.CreateDirectory(folder);
        string[] run = ["train", "--dataset", Classes("w.csv", 40, 1), "--label", "colour", "--epochs", "1", "--quiet", option, folder];
        // What a running coordinator holds: its folder's lock file, open exclusively.
        var lockPath = Path.Combine(folder, RunOutputs.CheckpointLockName);
        using (new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            var (code, output, error) = await RunAsync(run);
            Assert.Equal(1, code);
            Assert.Contains($"error: {option} {folder} is in use by another run ({lockPath} is held)", error);
            Assert.Contains("nothing was trained", error);
            Assert.DoesNotContain("accuracy", output);
            Assert.Empty(Directory.GetFiles(folder, "checkpoint-*"));
        }

        // Released (as the operating system does when that run's process ends, however it ends), the folder is free.
        var (after, _, afterError) = await RunAsync(run);
        Assert.True(after == 0, afterError);
        Assert.NotEmpty(Directory.GetFiles(folder, "checkpoint-*"));
    }

    [Theory]
    [InlineData("--layers", "8", "--layers 8 differs from the --init-model's hidden layers 16,4;")]
    [InlineData("--layers", "", "--layers (none) differs from the --init-model's hidden layers 16,4;")]
    [InlineData("--activation", "tanh", "--activation tanh differs from the --init-model's hidden activation relu;")]
    [InlineData("--output-activation", "sigmoid", "--output-activation sigmoid differs from the --init-model's output activation softmax;")]
    [InlineData("--dropout", "0.5", "--dropout 0.5 differs from the --init-model's dropout 0;")]
    [InlineData("--init", "he-normal", "--init chooses random starting weights and --init-model gives them")]
    [InlineData("--layers", "16,4", null)]
    [InlineData("--activation", "relu", null)]
    public async Task Train_InitModelWithAnOptionThatWouldShapeItOtherwise_IsRefused(string option, string value, string? said)
    {
        // Before, the option was ignored without a word: the run trained the saved model's shape.
        var data = Classes("shape.csv", 30, 1);
        var model = Path.Combine(_dir, "shape.bin");
        var (code, _, error) = await RunAsync("train", "--dataset", data, "--label", "colour", "--layers", "16,4", "--epochs", "1", "--model", model, "--quiet");
        Assert.True(code == 0, error);
        (code, _, error) = await RunAsync("train", "--dataset", data, "--label", "colour", "--init-model", model, "--epochs", "1", "--quiet", option, value);
        if (said is null)
        {
            Assert.True(code == 0, error);
            return;
        }

        Assert.Equal(1, code);
        Assert.Contains(said, error);
    }

    [Fact]
    public async Task Train_InitModelAndTestDataWithColumnsInAnotherOrder_TrainAsTheOrderedFilesDo()
    {
        var train = Classes("order-train.csv", 60, 1);
        var test = Classes("order-test.csv", 30, 500);
        static string Swap(string path)
        {
            var swapped = Path.ChangeExtension(path, ".swapped.csv");
            File.WriteAllLines(swapped, File.ReadAllLines(path).Select(l => l.Split(',') is var f ? $"{f[1]},{f[2]},{f[0]}" : l));
            return swapped;
        }

        var model = Path.Combine(_dir, "order.bin");
        var (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--epochs", "1", "--model", model, "--quiet");
        Assert.True(code == 0, error);
        async Task<string> EpochAsync(string data, string testData, string name)
        {
            var report = Path.Combine(_dir, name);
            var (c, _, e) = await RunAsync("train", "--dataset", data, "--test-data", testData, "--label", "colour", "--init-model", model, "--epochs", "1", "--workers", "1", "--report", report, "--quiet");
            Assert.True(c == 0, e);
            using var json = JsonDocument.Parse(File.ReadAllText(report));
            var epoch = json.RootElement.GetProperty("epochs")[0];
            return $"{epoch.GetProperty("trainLoss").GetDouble():R} {epoch.GetProperty("testLoss").GetDouble():R}";
        }

        // Before, the swapped files' columns were taken in file order: y as x and x as y, for the model and the test set.
        var ordered = await EpochAsync(train, test, "ordered.json");
        Assert.Equal(ordered, await EpochAsync(Swap(train), test, "swapped-train.json"));
        Assert.Equal(ordered, await EpochAsync(train, Swap(test), "swapped-test.json"));
    }

    [Fact]
    public void Finish_AnOutputThatFailsAtTheEnd_DoesNotCostTheOthers()
    {
        File.WriteAllText(Path.Combine(_dir, "blocker"), "a file");
        var run = Cluster.Tests.Shared.TestRuns.Run();
        var model = Path.Combine(_dir, "kept.bin");
        var settings = new Runs.TrainSettings { ModelPath = model, ReportPath = Path.Combine(_dir, "blocker", "run.json"), PlotPath = Path.Combine(_dir, "kept.svg"), Quiet = true };
        using var backend = new Compute.Backends.ManagedBackend(1);
        var error = Assert.Throws<IOException>(() => Runs.RunOutputs.Finish(TextWriter.Null, settings, run, [], null, new Compute.Training.TrainingState(), backend, 1, null, settings.Threads));
        Assert.StartsWith("Training finished, but --report ", error.Message);
        Assert.DoesNotContain("--model", error.Message);
        Assert.Equal(run.Model.Parameters, Compute.Models.ModelFile.Load(model).Parameters);
        Assert.True(File.Exists(Path.Combine(_dir, "kept.svg")));
    }

    [Fact]
    public async Task EnvironmentTwin_IsUsed_AndBadValueNamesTheVariable()
    {
        var train = Classes("env.csv", 60, 1);
        var report = Path.Combine(_dir, "env.json");
        Environment.SetEnvironmentVariable("CLUSTER_EPOCHS", "3");
        try
        {
            var (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--workers", "1", "--report", report, "--quiet");
            Assert.True(code == 0, error);
            using var json = JsonDocument.Parse(File.ReadAllText(report));
            Assert.Equal(3, json.RootElement.GetProperty("epochs").GetArrayLength());
            Environment.SetEnvironmentVariable("CLUSTER_EPOCHS", "three");
            (code, _, error) = await RunAsync("train", "--dataset", train, "--label", "colour", "--quiet");
            Assert.Equal(1, code);
            Assert.Contains("CLUSTER_EPOCHS", error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTER_EPOCHS", null);
        }
    }

    [Theory]
    [InlineData("xor")]
    [InlineData("or-perceptron")]
    [InlineData("streetlight")]
    [InlineData("regression")]
    public async Task Example_Runs_AndPrintsItsError(string name)
    {
        var (code, output, error) = await RunAsync("example", name);
        Assert.True(code == 0, error + output);
        Assert.True(output.Contains("error", StringComparison.Ordinal) || output.Contains("misclassified", StringComparison.Ordinal), output);
    }

    [Fact]
    public async Task Example_OrPerceptron_SaysHowManyPointsXorsFinalWeightsMisclassify()
    {
        // It said "still 4 misclassified after 100 epochs": the mistakes made during the last pass, each an update.
        // No weights of one threshold unit misclassify all four XOR points, nor none of them.
        var (code, output, error) = await RunAsync("example", "or-perceptron");
        Assert.True(code == 0, error + output);
        Assert.Matches(@"Perceptron rule on XOR: [1-4] misclassified during pass 100, and no pass without one; its final weights misclassify [1-3] of the 4 points\. XOR is not linearly separable\.", output);
        Assert.Contains("misclassified during the pass (each one an update)", output);
    }

    [Fact]
    public async Task BenchGemm_Json_HasTheDocumentedFields()
    {
        var (code, output, error) = await RunAsync("bench", "gemm", "--json", "--threads", "1,2", "--size", "64", "--backend", "managed");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(output);
        var gemm = json.RootElement.GetProperty("gemm");
        Assert.Equal(2 * 19, gemm.GetArrayLength());
        Assert.Equal([1, 2], gemm.EnumerateArray().Select(g => g.GetProperty("threads").GetInt32()).Distinct());
        // Only a call of more than one thread forks and joins.
        var forkJoin = Assert.Single(json.RootElement.GetProperty("forkJoin").EnumerateArray());
        Assert.Equal(2, forkJoin.GetProperty("threads").GetInt32());
        // A time, so only its sign and finiteness are asserted: on cores busy with other tests a fork-join can take
        // milliseconds.
        var nanoseconds = forkJoin.GetProperty("nanoseconds").GetDouble();
        Assert.True(nanoseconds > 0 && double.IsFinite(nanoseconds), $"{nanoseconds}");
        foreach (var field in new[] { "backend", "threads", "m", "n", "k", "gflops" })
        {
            Assert.True(gemm[0].TryGetProperty(field, out _), field);
        }

        Assert.True(gemm[0].GetProperty("gflops").GetDouble() > 0);
        Assert.True(json.RootElement.GetProperty("peak")[0].GetProperty("gflops").GetDouble() > 0);
        // A 2-thread call is bounded by its fork-join (at least by half the peak, on one thread alone); one thread has none.
        foreach (var g in gemm.EnumerateArray())
        {
            var hasBound = g.TryGetProperty("forkJoinBound", out var bound);
            Assert.Equal(g.GetProperty("threads").GetInt32() == 2, hasBound);
            Assert.True(!hasBound || bound.GetDouble() is >= 0.5 and <= 1, g.ToString());
        }
    }

    [Fact]
    public async Task BenchGemm_ThreadsPastTheProcessors_AreSetAgainstTheThreadsThatCompute()
    {
        var processors = Environment.ProcessorCount;
        var asked = processors + 2;
        var (code, output, error) = await RunAsync("bench", "gemm", "--json", "--threads", asked.ToString(CultureInfo.InvariantCulture), "--size", "32", "--backend", "managed");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(output);
        // One peak, of the processors: threads past them take turns at the cores and add no flops. Before, the peak of
        // 4 threads on 2 cores read 893 GFLOP/s, four times a core's.
        var peak = Assert.Single(json.RootElement.GetProperty("peak").EnumerateArray());
        Assert.Equal(processors, peak.GetProperty("threads").GetInt32());
        Assert.Equal(processors > 1, json.RootElement.GetProperty("forkJoin").EnumerateArray().Any(f => f.GetProperty("threads").GetInt32() == processors));
        Assert.DoesNotContain(json.RootElement.GetProperty("forkJoin").EnumerateArray(), f => f.GetProperty("threads").GetInt32() == asked);
        foreach (var g in json.RootElement.GetProperty("gemm").EnumerateArray())
        {
            Assert.Equal(asked, g.GetProperty("threads").GetInt32());
            Assert.Equal(processors, g.GetProperty("computeThreads").GetInt32());
            // The one-thread floor of the bound is 1 / the threads that compute, not 1 / the threads asked.
            Assert.True(!g.TryGetProperty("forkJoinBound", out var bound) || bound.GetDouble() >= 1.0 / processors - 1e-3, g.ToString());
        }

        var (tableCode, table, tableError) = await RunAsync("bench", "gemm", "--threads", asked.ToString(CultureInfo.InvariantCulture), "--size", "32", "--backend", "managed");
        Assert.True(tableCode == 0, tableError);
        Assert.Contains($"Note: {asked} threads on {processors} processor(s): the backends compute on {processors}", table);
    }

    [Theory]
    [InlineData("--epochs", "1")]
    [InlineData("--batch-sizes", "256,x")]
    [InlineData("--workers", "0")]
    [InlineData("--repeat", "0")]
    public async Task BenchCluster_BadArguments_AreRefusedBeforeTraining(string option, string value)
    {
        var (code, output, error) = await RunAsync("bench", "cluster", option, value, "--data-dir", Path.Combine(_dir, "no-such-data"));
        Assert.NotEqual(0, code);
        Assert.Contains(option, error);
        Assert.False(Directory.Exists(Path.Combine(_dir, "no-such-data")), "nothing was fetched");
        Assert.DoesNotContain("samples/s", output);
    }
}
