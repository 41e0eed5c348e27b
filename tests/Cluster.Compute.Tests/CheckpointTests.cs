using Cluster.Compute.Backends;
using Cluster.Compute.Training;

namespace Cluster.Compute.Tests;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-ckpt").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static (Trainer Trainer, Sequential Model, ManagedBackend Backend) NewTrainer(int epochs, string optimizer = "adam")
    {
        var data = NetworkTests.Blobs(200, 3);
        var model = new Sequential(2, Sequential.Stack([16], Activation.Relu, 3, Activation.Softmax, 0.2f), LossKind.CrossEntropy);
        model.Initialize(4);
        var backend = new ManagedBackend(1);
        var options = new TrainingOptions { Epochs = epochs, BatchSize = 16, LearningRate = 0.01f, Optimizer = optimizer, Seed = 4 };
        return (new Trainer(model, options, new LocalGradientSource(model, data, backend, 16, 4), data, null, null, backend), model, backend);
    }

    private sealed class StopAt(long step, CancellationTokenSource cts, Action<Trainer> save, Trainer trainer) : ITrainingObserver
    {
        public void OnStep(in StepReport report)
        {
            if (report.GlobalStep == step)
            {
                save(trainer);
                cts.Cancel();
            }
        }
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("momentum")]
    [InlineData("adam")]
    public async Task Resume_FromMidEpochCheckpoint_GivesBitIdenticalWeights(string optimizer)
    {
        var (full, fullModel, b1) = NewTrainer(3, optimizer);
        await full.RunAsync();

        var store = new CheckpointStore(_dir);
        var (first, _, b2) = NewTrainer(3, optimizer);
        using var cts = new CancellationTokenSource();
        first.Observe(new StopAt(20, cts, t => store.Save(t.Capture()), first));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.RunAsync(cts.Token));

        var (second, resumedModel, b3) = NewTrainer(3, optimizer);
        second.Restore(store.LoadLatest(out var skipped)!);
        Assert.Empty(skipped);
        Assert.Equal(20, second.State.GlobalStep);
        var history = await second.RunAsync();
        Assert.Equal(fullModel.Parameters, resumedModel.Parameters);
        Assert.Equal(full.State.History.Select(h => h.TrainLoss), history.Select(h => h.TrainLoss));
        b1.Dispose();
        b2.Dispose();
        b3.Dispose();
    }

    [Fact]
    public void Store_CorruptLatest_IsReportedAndThePreviousUsed()
    {
        var (trainer, _, backend) = NewTrainer(1);
        var store = new CheckpointStore(_dir, keep: 2);
        trainer.State.GlobalStep = 5;
        store.Save(trainer.Capture());
        trainer.State.GlobalStep = 9;
        var latest = store.Save(trainer.Capture());
        var bytes = File.ReadAllBytes(latest);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(latest, bytes);
        var loaded = store.LoadLatest(out var skipped);
        Assert.Equal(5, loaded!.Header.GlobalStep);
        Assert.Single(skipped);
        Assert.Contains("checksum", skipped[0]);
        trainer.State.GlobalStep = 12;
        store.Save(trainer.Capture());
        Assert.Equal(2, store.Files().Count);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
        backend.Dispose();
    }

    [Fact]
    public void Restore_OtherRunsCheckpoint_IsRefused()
    {
        var (a, _, b1) = NewTrainer(1, "adam");
        var (b, _, b2) = NewTrainer(1, "sgd");
        // Through the file format: the checkpoint keeps its run's fields, so the refusal says what differs.
        var saved = Checkpoint.FromBytes(a.Capture().ToBytes());
        var ex = Assert.Throws<InvalidDataException>(() => b.Restore(saved));
        Assert.Equal("The checkpoint belongs to a different run (--optimizer (adam in the checkpoint, sgd now)); use the checkpoint's options, or start a new run without --resume (checkpointing to another folder).", ex.Message);
        // One written before the fields were kept says what it can.
        var older = new Checkpoint { Fingerprint = saved.Fingerprint, Header = saved.Header, Parameters = saved.Parameters, OptimizerState = saved.OptimizerState };
        ex = Assert.Throws<InvalidDataException>(() => b.Restore(Checkpoint.FromBytes(older.ToBytes())));
        Assert.Contains("different run (architecture, training options or data differ)", ex.Message);
        Assert.Throws<InvalidDataException>(() => Checkpoint.FromBytes(new byte[10]));
        b1.Dispose();
        b2.Dispose();
    }

    [Fact]
    public void Fingerprint_IsTheHashCheckpointsHaveAlwaysCarried_SoOlderOnesStillResume()
    {
        // The formula of the checkpoints written before the run's fields were kept beside the hash.
        var options = new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 0.01f, Optimizer = "momentum", Momentum = 0.8f, L1 = 1e-5f, L2 = 1e-4f, Seed = 9, Schedule = Cluster.Compute.Optim.LearningRateSchedule.Parse("step:2:0.5"), EarlyStoppingPatience = 2 };
        var c = System.Globalization.CultureInfo.InvariantCulture;
        var text = string.Join('|', "{\"layers\":[]}", options.BatchSize, options.LearningRate.ToString("R", c), options.Optimizer, options.Momentum.ToString("R", c), options.L1.ToString("R", c),
            options.L2.ToString("R", c), options.Seed, options.Schedule, options.Shuffle, options.EarlyStoppingPatience, 200, 2);
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        Assert.Equal(expected, Checkpoint.FingerprintOf("{\"layers\":[]}", options, 200, 2));
        Assert.Equal(expected, Checkpoint.FingerprintOf("{\"layers\":[]}", options with { Epochs = 30 }, 200, 2));
    }
}
