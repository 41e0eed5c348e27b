using System.Buffers.Binary;
using Cluster.Tests.Shared;
using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Compute.Randomness;
using Cluster.Compute.Backends;
using Cluster.Compute.Training;
using Cluster.Contracts.Grains;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Runs;
using Cluster.WorkerSilo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Coordinator.Tests;

public sealed class EmbeddedClusterTests
{
    /// <summary>
    /// Trains <paramref name="run"/> on <paramref name="workers"/> embedded workers, each joined as itself or as <paramref name="wrap"/>
    /// makes it; the run needs all of them unless <paramref name="minWorkers"/> says fewer.
    /// </summary>
    private static async Task<(float[] Weights, CoordinatorGrain Grain, List<WorkerGrain> Workers)> TrainEmbeddedAsync(PreparedRun run, int workers, Action<CoordinatorGrain>? before = null, Func<WorkerGrain, IWorkerGrain>? wrap = null, bool spinBetweenSteps = false, int? minWorkers = null, string? dataDir = null, Func<PreparedRun, Dataset>? trainingSet = null)
    {
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = minWorkers ?? workers, MaxWorkers = 16 }, eval, NullLogger.Instance);
        var list = new List<WorkerGrain>();
        for (var i = 0; i < workers; i++)
        {
            var w = new WorkerGrain($"w{i}", dataDir: dataDir, spinBetweenSteps: spinBetweenSteps, trainingSet: trainingSet?.Invoke(run));
            list.Add(w);
            await grain.JoinAsync(new Hello { WorkerId = w.WorkerId, ProtocolVersion = 1, HasLocalData = w.HasLocalData }, wrap is null ? w : wrap(w), CancellationToken.None);
        }

        before?.Invoke(grain);
        await grain.RunAsync(CancellationToken.None);
        return (run.Model.Parameters, grain, list);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, false)]
    [InlineData(2, true)]
    [InlineData(3, true)]
    public async Task Cluster_NWorkers_MatchesSingleProcessTraining(int workers, bool spinBetweenSteps)
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        var (actual, grain, list) = await TrainEmbeddedAsync(TestRuns.Run(), workers, spinBetweenSteps: spinBetweenSteps);
        TestRuns.AssertClose(expected, actual, 1e-5);
        Assert.Equal(workers, grain.PeakWorkers);
        Assert.All(list, w => Assert.True(w.ShardSize > 0));
        Assert.Equal(240, list.Sum(w => w.ShardSize));
        list.ForEach(w => w.Dispose());
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Cluster_InProcessWorkersOnTheRunsTrainingSet_ReadTheirShardsInPlace_WithTheSameBits(int workers)
    {
        var (shipped, _, shippedWorkers) = await TrainEmbeddedAsync(TestRuns.Run(), workers);
        var (inPlace, _, inPlaceWorkers) = await TrainEmbeddedAsync(TestRuns.Run(), workers, trainingSet: run => run.Train);
        Assert.Equal(shipped, inPlace);
        Assert.All(inPlaceWorkers, w => Assert.True(w.ShardInPlace));
        Assert.All(shippedWorkers, w => Assert.False(w.ShardInPlace));
        Assert.Equal(240, inPlaceWorkers.Sum(w => w.ShardSize));

        // Another set with the same samples is not the run's: those workers are sent their shards, as before.
        var (copied, _, copiedWorkers) = await TrainEmbeddedAsync(TestRuns.Run(), workers, trainingSet: _ => TestRuns.Data(240, 1));
        Assert.Equal(shipped, copied);
        Assert.All(copiedWorkers, w => Assert.False(w.ShardInPlace));
        shippedWorkers.Concat(inPlaceWorkers).Concat(copiedWorkers).ToList().ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Cluster_WorkersLoadingMnistFromTheirDataDir_TrainAsOnShippedShards()
    {
        // Small IDX files in MNIST's layout: a run named mnist lets workers with a --data-dir read their rows themselves.
        var dir = Directory.CreateTempSubdirectory("local-mnist");
        var other = Directory.CreateTempSubdirectory("local-mnist-other");
        var gzip = Directory.CreateTempSubdirectory("local-mnist-gz");
        try
        {
            await LocalAndShipped(dir.FullName, other.FullName, gzip.FullName);
        }
        finally
        {
            dir.Delete(recursive: true);
            other.Delete(recursive: true);
            gzip.Delete(recursive: true);
        }
    }

    private static async Task LocalAndShipped(string dir, string other, string gzip)
    {
        WriteIdx(dir, "train", 300, seed: 1);
        PreparedRun MnistRun()
        {
            var model = new Sequential(784, Sequential.Stack([16], Activation.Relu, 10, Activation.Softmax, 0), LossKind.CrossEntropy);
            model.Initialize(7);
            var options = new TrainingOptions { Epochs = 2, BatchSize = 40, LearningRate = 0.1f, Optimizer = "sgd", Seed = 7 };
            return new PreparedRun("mnist", Mnist.LoadTrain(dir), null, null, model, options);
        }

        var (shipped, _, shippedWorkers) = await TrainEmbeddedAsync(MnistRun(), 2);
        var (local, _, localWorkers) = await TrainEmbeddedAsync(MnistRun(), 2, dataDir: dir);
        Assert.Equal(shipped, local);
        Assert.All(localWorkers, w => Assert.True(w.ShardSize > 0));

        // Workers whose folder holds other pixels train on those: they did read their rows from it.
        WriteIdx(other, "train", 300, seed: 2);
        var (fromOther, _, otherWorkers) = await TrainEmbeddedAsync(MnistRun(), 2, dataDir: other);
        Assert.NotEqual(shipped, fromOther);

        // The same files gzipped (a worker reads through to its rows instead of seeking), over three workers.
        foreach (var name in new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte" })
        {
            using var source = File.OpenRead(Path.Combine(dir, name));
            using var target = File.Create(Path.Combine(gzip, name + ".gz"));
            using var z = new System.IO.Compression.GZipStream(target, System.IO.Compression.CompressionLevel.Fastest);
            source.CopyTo(z);
        }

        var (shippedToThree, _, threeWorkers) = await TrainEmbeddedAsync(MnistRun(), 3);
        var (fromGzip, _, gzipWorkers) = await TrainEmbeddedAsync(MnistRun(), 3, dataDir: gzip);
        Assert.Equal(shippedToThree, fromGzip);
        shippedWorkers.Concat(localWorkers).Concat(otherWorkers).Concat(threeWorkers).Concat(gzipWorkers).ToList().ForEach(w => w.Dispose());
    }

    /// <summary>Writes <paramref name="prefix"/>-images and -labels IDX files of <paramref name="count"/> random 28 x 28 samples.</summary>
    private static void WriteIdx(string directory, string prefix, int count, ulong seed)
    {
        var rng = new Rng(seed);
        var images = new byte[16 + count * 784];
        var labels = new byte[8 + count];
        BinaryPrimitives.WriteInt32BigEndian(images, IdxReader.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(12), 28);
        BinaryPrimitives.WriteInt32BigEndian(labels, IdxReader.LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), count);
        for (var i = 0; i < count; i++)
        {
            labels[8 + i] = (byte)rng.NextInt(10);
            for (var p = 0; p < 784; p++)
            {
                // A lit patch per class, as digits light different pixels.
                images[16 + i * 784 + p] = (byte)(p / 78 == labels[8 + i] ? 150 + rng.NextInt(100) : rng.NextInt(60));
            }
        }

        File.WriteAllBytes(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), images);
        File.WriteAllBytes(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), labels);
    }

    [Fact]
    public async Task Cluster_WorkerThreadsAndBackends_AreThoseTheAdmittedWorkersSaidTheyHave()
    {
        // The report's threadsPerWorker came from the coordinator's own --threads, which says nothing of remote workers'.
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(TestRuns.Run(), new ClusterOptions { MinWorkers = 3, MaxWorkers = 16 }, eval, NullLogger.Instance);
        Assert.Empty(grain.WorkerThreads);
        var workers = new List<WorkerGrain>();
        foreach (var (threads, i) in new[] { 4, 1, 4 }.Select((t, i) => (t, i)))
        {
            var w = new WorkerGrain($"w{i}");
            workers.Add(w);
            await grain.JoinAsync(new Hello { WorkerId = w.WorkerId, ProtocolVersion = 1, Threads = threads, Backend = i == 1 ? "openblas" : "managed" }, w, CancellationToken.None);
        }

        await grain.RunAsync(CancellationToken.None);
        Assert.Equal([1, 4], grain.WorkerThreads);
        Assert.Equal(["managed", "openblas"], grain.WorkerBackends);
        workers.ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Cluster_WorkersOnLanesOfTheirOwn_GiveTheSameBitsAsOnThePool()
    {
        var (pool, _, poolWorkers) = await TrainEmbeddedAsync(TestRuns.Run(), 3);
        var (lanes, _, laneWorkers) = await TrainEmbeddedAsync(TestRuns.Run(), 3, spinBetweenSteps: true);
        Assert.Equal(pool, lanes);
        Assert.All(laneWorkers, w => Assert.True(w.SpinsBetweenSteps));
        poolWorkers.Concat(laneWorkers).ToList().ForEach(w => w.Dispose());
    }

    /// <summary>A run whose learning rate sends the weights to infinity within a few steps.</summary>
    private static PreparedRun Diverging()
    {
        var run = TestRuns.Run();
        return run with { Options = run.Options with { LearningRate = 1e30f, Optimizer = "sgd" } };
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    public async Task Cluster_ModelDiverges_FailsAsSingleProcessTrainingDoes_WithoutDroppingItsWorkers(int workers, bool spinBetweenSteps)
    {
        var single = Diverging();
        var expected = await Assert.ThrowsAsync<TrainingDivergedException>(() => TestRuns.SingleProcessAsync(single));
        var run = Diverging();
        var failure = await Assert.ThrowsAsync<TrainingDivergedException>(() => TrainEmbeddedAsync(run, workers, spinBetweenSteps: spinBetweenSteps).WaitAsync(TimeSpan.FromMinutes(1)));
        // The same step is refused (before, the workers were dropped for their NaN and the run waited for others).
        Assert.Equal(expected.Message, failure.Message);
        Assert.All(run.Model.Parameters, p => Assert.True(float.IsFinite(p), "a refused step left a non-finite weight"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cluster_StreamMemberSendsNaN_ItIsDropped_AndTheOthersRecomputeItsSlice(bool refusedByItsStream)
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        var (actual, grain, list) = await TrainEmbeddedAsync(TestRuns.Run(), 2, minWorkers: 1, wrap: w => w.WorkerId == "w1" ? new NaNAtStep(w, 3, refusedByItsStream) : w)
            .WaitAsync(TimeSpan.FromMinutes(1));
        TestRuns.AssertClose(expected, actual, 1e-5);
        Assert.Equal(1, grain.ActiveWorkers);
        list.ForEach(w => w.Dispose());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cluster_EveryStreamMemberSendsNaN_IsDivergence_NotAWaitForMembers(bool refusedByItsStream)
    {
        CoordinatorGrain? grain = null;
        var failure = await Assert.ThrowsAsync<TrainingDivergedException>(() => TrainEmbeddedAsync(TestRuns.Run(), 2, g => grain = g, w => new NaNAtStep(w, 3, refusedByItsStream), minWorkers: 1)
            .WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains("step 4", failure.Message);
        Assert.Equal(2, grain!.PeakWorkers);
    }

    [Fact]
    public async Task Cluster_WorkerFailingAStep_ItsSliceIsRecomputed_AndTheResultStillMatches()
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        // Rank 1 fails step 5 after rank 0 answered: rank 0's sum is held for pairing when the retry round makes rank 0
        // compute again into the same buffer.
        var (actual, grain, list) = await TrainEmbeddedAsync(TestRuns.Run(), 2, minWorkers: 1, wrap: w => w.WorkerId == "w1" ? new FailsAtStep(w, 5) : w);
        TestRuns.AssertClose(expected, actual, 1e-5);
        Assert.Equal(2, grain.PeakWorkers);
        list.ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Cluster_TheLastMemberCalled_ComputesOnTheCallingThread_AndTheResultStillMatches()
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        var workers = new List<Recording>();
        var (actual, _, list) = await TrainEmbeddedAsync(TestRuns.Run(), 3, wrap: w =>
        {
            var recording = new Recording(w);
            workers.Add(recording);
            return recording;
        });
        TestRuns.AssertClose(expected, actual, 1e-5);
        // Ranks follow the join order: every step, only the last rank was asked to compute on the caller's thread, and
        // it had done so by the time its call returned.
        Assert.All(workers, w => Assert.NotEmpty(w.Calls));
        Assert.All(workers.Take(2), w => Assert.DoesNotContain(w.Calls, c => c.OnCallingThread));
        Assert.All(workers[2].Calls, c => Assert.True(c.OnCallingThread && c.DoneOnReturn, $"step {c.Step}: {c}"));
        list.ForEach(w => w.Dispose());
    }

    private sealed class Recording(WorkerGrain inner) : IWorkerGrain
    {
        public List<(long Step, bool OnCallingThread, bool DoneOnReturn)> Calls { get; } = [];

        public string WorkerId => inner.WorkerId;

        public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) => inner.AdmitAsync(admission, cancellationToken);

        public Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken) => inner.LoadShardAsync(chunk, cancellationToken);

        public Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
        {
            var call = inner.ComputeAsync(command, cancellationToken);
            lock (Calls)
            {
                Calls.Add((command.Step, command.OnCallingThread, call.IsCompletedSuccessfully));
            }

            return call;
        }

        public Task StopAsync(Stop stop, CancellationToken cancellationToken) => inner.StopAsync(stop, cancellationToken);
    }

    /// <summary>
    /// Stands for a worker behind a stream (not in-process) whose answer to one step holds a NaN: handed to the step, or
    /// <paramref name="refused"/> by the stream, as a real one's is.
    /// </summary>
    private sealed class NaNAtStep(IWorkerGrain inner, long step, bool refused = false) : IWorkerGrain
    {
        public string WorkerId => inner.WorkerId;

        public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) => inner.AdmitAsync(admission, cancellationToken);

        public Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken) => inner.LoadShardAsync(chunk, cancellationToken);

        public async Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
        {
            var reply = await inner.ComputeAsync(command, cancellationToken);
            if (command.Step != step)
            {
                return reply;
            }

            if (refused)
            {
                throw new NonFiniteAnswerException($"Worker {inner.WorkerId} disconnected: InvalidArgument: Gradient contains NaN or infinity; rejected.");
            }

            var poisoned = reply.GradientSum.ToArray();
            poisoned[poisoned.Length / 2] = float.NaN;
            return reply with { GradientSum = poisoned };
        }

        public Task StopAsync(Stop stop, CancellationToken cancellationToken) => inner.StopAsync(stop, cancellationToken);
    }

    private sealed class FailsAtStep(IWorkerGrain inner, long step) : IWorkerGrain
    {
        public string WorkerId => inner.WorkerId;

        public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) => inner.AdmitAsync(admission, cancellationToken);

        public Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken) => inner.LoadShardAsync(chunk, cancellationToken);

        public async Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
        {
            if (command.Step == step)
            {
                // Fails once rank 0 has answered, so its sum is the one held.
                await Task.Delay(50, cancellationToken);
                throw new InvalidOperationException("injected failure");
            }

            return await inner.ComputeAsync(command, cancellationToken);
        }

        public Task StopAsync(Stop stop, CancellationToken cancellationToken) => inner.StopAsync(stop, cancellationToken);
    }

    [Fact]
    public async Task Cluster_RunStoppedWhileAMemberFails_EndsAsAStop_NotWithTheMembersError()
    {
        // As when train --processes learns that its worker processes are gone while their streams break: the run's
        // token is cancelled, then the member's call fails with its own error.
        using var stop = new CancellationTokenSource();
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(TestRuns.Run(), new ClusterOptions { MinWorkers = 1, MaxWorkers = 4 }, eval, NullLogger.Instance);
        using var worker = new WorkerGrain("w0");
        await grain.JoinAsync(new Hello { WorkerId = "w0", ProtocolVersion = 1 }, new BreaksAfterStop(worker, 3, stop), CancellationToken.None);
        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => grain.RunAsync(stop.Token).WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.IsType<GrpcStatusException>(ex.InnerException);
        Assert.Equal(3, grain.Trainer.State.GlobalStep);
    }

    /// <summary>A member whose stream breaks at <paramref name="step"/>, just after the run was stopped.</summary>
    private sealed class BreaksAfterStop(IWorkerGrain inner, long step, CancellationTokenSource stop) : IWorkerGrain
    {
        public string WorkerId => inner.WorkerId;

        public Task AdmitAsync(Admission admission, CancellationToken cancellationToken) => inner.AdmitAsync(admission, cancellationToken);

        public Task LoadShardAsync(ShardData chunk, CancellationToken cancellationToken) => inner.LoadShardAsync(chunk, cancellationToken);

        public async Task<GradientReply> ComputeAsync(StepCommand command, CancellationToken cancellationToken)
        {
            if (command.Step == step)
            {
                await stop.CancelAsync();
                throw new GrpcStatusException(GrpcStatusCode.Unavailable, $"Worker {WorkerId} disconnected: the stream broke");
            }

            return await inner.ComputeAsync(command, cancellationToken);
        }

        public Task StopAsync(Stop stop, CancellationToken cancellationToken) => inner.StopAsync(stop, cancellationToken);
    }

    [Fact]
    public async Task Cluster_OneWorker_BitIdenticalToSingleProcess()
    {
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run());
        var (actual, _, list) = await TrainEmbeddedAsync(TestRuns.Run(), 1);
        Assert.Equal(expected, actual);
        list.ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Cluster_SameTopologyTwice_BitIdentical()
    {
        var (first, _, a) = await TrainEmbeddedAsync(TestRuns.Run(), 3);
        var (second, _, b) = await TrainEmbeddedAsync(TestRuns.Run(), 3);
        Assert.Equal(first, second);
        a.Concat(b).ToList().ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Cluster_WorkerJoiningMidRun_GetsCurrentWeightsAndResultStillMatches()
    {
        var run = TestRuns.Run(epochs: 3);
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run(epochs: 3));
        var late = new WorkerGrain("late");
        // Joins during step 12; it is admitted at the next step boundary.
        var (actual, grain, list) = await TrainEmbeddedAsync(run, 1, g => g.Trainer.Observe(new AtStep(12, () =>
            g.JoinAsync(new Hello { WorkerId = "late", ProtocolVersion = 1 }, late, CancellationToken.None).GetAwaiter().GetResult())));
        TestRuns.AssertClose(expected, actual, 1e-5);
        Assert.Equal(2, grain.PeakWorkers);
        Assert.True(late.ShardSize > 0);
        // The late worker computed the last step at the weights the coordinator held for it.
        Assert.Equal(grain.Trainer.State.GlobalStep - 1, late.WeightsVersion);
        Assert.Equal(list[0].WeightsVersion, late.WeightsVersion);
        Assert.Equal(list[0].Weights.ToArray(), late.Weights.ToArray());
        late.Dispose();
        list.ForEach(w => w.Dispose());
    }

    private sealed class AtStep(long step, Action action) : global::Cluster.Compute.Training.ITrainingObserver
    {
        public void OnStep(in global::Cluster.Compute.Training.StepReport report)
        {
            if (report.GlobalStep == step)
            {
                action();
            }
        }
    }

    [Fact]
    public async Task Join_DuplicateWorkerId_IsRefused()
    {
        var run = TestRuns.Run();
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions(), eval, NullLogger.Instance);
        using var a = new WorkerGrain("same");
        using var b = new WorkerGrain("same");
        await grain.JoinAsync(new Hello { WorkerId = "same", ProtocolVersion = 1 }, a, CancellationToken.None);
        var ex = await Assert.ThrowsAsync<Contracts.Grpc.GrpcStatusException>(() => grain.JoinAsync(new Hello { WorkerId = "same", ProtocolVersion = 1 }, b, CancellationToken.None));
        Assert.Equal(Contracts.Grpc.GrpcStatusCode.AlreadyExists, ex.Status);
        var empty = await Assert.ThrowsAsync<Contracts.Grpc.GrpcStatusException>(() => grain.JoinAsync(new Hello { WorkerId = "", ProtocolVersion = 1 }, b, CancellationToken.None));
        Assert.Equal(Contracts.Grpc.GrpcStatusCode.InvalidArgument, empty.Status);
    }

    [Fact]
    public void ShardPlan_CoversEverySampleOnce()
    {
        foreach (var members in new[] { 1, 2, 3, 7 })
        {
            var owner = new int[100];
            ShardPlan.Owners(members, owner);
            var total = Enumerable.Range(0, members).Sum(r => ShardPlan.RangeOf(r, members, 100).Count);
            Assert.Equal(100, total);
            Assert.Equal(Enumerable.Range(0, members), owner.Distinct().Order());
            Assert.True(owner.SequenceEqual(owner.Order()));
        }
    }
}
