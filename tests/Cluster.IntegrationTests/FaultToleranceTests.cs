using Cluster.Tests.Shared;
using Cluster.Compute.Training;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.WorkerSilo;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.IntegrationTests;

public sealed class FaultToleranceTests
{
    private static Cluster.Coordinator.Runs.PreparedRun Big(int epochs = 3) => TestRuns.Run(epochs: epochs, batch: 20, trainCount: 2000, testCount: 1000, dropout: 0f);

    private sealed class AtStep(long step, Action action) : ITrainingObserver
    {
        public void OnStep(in StepReport report)
        {
            if (report.GlobalStep == step)
            {
                action();
            }
        }
    }

    private static void AssertExactAccounting(CoordinatorGrain grain, int epochs)
    {
        Assert.Equal(epochs, grain.Accounting.Count);
        Assert.All(grain.Accounting, a => Assert.Equal((a.Samples, 0, 0), (a.Used, a.Duplicates, a.Missing)));
    }

    private static async Task WaitMembersAsync(CoordinatorGrain grain, int live)
    {
        await TestRuns.WaitForAsync(() => grain.GetStatusAsync().Result.Members.Count(m => m.State is "active" or "pending" or "waiting") >= live,
            $"{live} live members", () => string.Join(", ", grain.GetStatusAsync().Result.Members.Select(m => $"{m.WorkerId}:{m.State}")));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public async Task KillWorker_AtRandomStep_RunCompletesWithExactAccounting(int seed)
    {
        var reference = Big();
        var expected = await TestRuns.SingleProcessAsync(reference);
        var run = Big();
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        cluster.StartWorker("a");
        cluster.StartWorker("b");
        cluster.StartWorker("c");
        await WaitMembersAsync(cluster.Grain, 3);
        var killAt = new Random(seed).Next(5, 280);
        var victim = new[] { "a", "b", "c" }[seed % 3];
        cluster.Grain.Trainer.Observe(new AtStep(killAt, () => cluster.KillWorker(victim)));
        var history = await cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        AssertExactAccounting(cluster.Grain, 3);
        Assert.Equal(1, cluster.Grain.Counters.Failures);
        // The killed worker's slices were recomputed by the survivors: the same mathematics as the fault-free run.
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
        Assert.Equal(3, history.Count);
    }

    [Fact]
    public async Task Scale_2To4To1To3_CompletesWithEverySampleOnce()
    {
        var run = Big(epochs: 3);
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        cluster.StartWorker("w1");
        cluster.StartWorker("w2");
        await WaitMembersAsync(cluster.Grain, 2);
        var grain = cluster.Grain;
        grain.Trainer.Observe(new AtStep(40, () =>
        {
            cluster.StartWorker("w3");
            cluster.StartWorker("w4");
            WaitMembersAsync(grain, 4).GetAwaiter().GetResult();
        }));
        grain.Trainer.Observe(new AtStep(120, () =>
        {
            foreach (var id in new[] { "w1", "w2", "w3" })
            {
                cluster.TerminateWorker(id);
            }

            foreach (var id in new[] { "w1", "w2", "w3" })
            {
                Assert.Equal(0, cluster.WaitForExit(id));
            }
        }));
        grain.Trainer.Observe(new AtStep(200, () =>
        {
            cluster.StartWorker("w5");
            cluster.StartWorker("w6");
            WaitMembersAsync(grain, 3).GetAwaiter().GetResult();
        }));
        await grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        AssertExactAccounting(grain, 3);
        Assert.Equal(4, grain.PeakWorkers);
        Assert.Equal(6, grain.Counters.Joins);
        Assert.Equal(3, grain.Counters.Leaves);
        Assert.Equal(3, grain.ActiveWorkers);
        var expected = await TestRuns.SingleProcessAsync(Big(epochs: 3));
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
    }

    /// <summary>A one-epoch run with a real worker and a hand-driven fake that has just received its first step plan.</summary>
    private sealed class HostileScene : IAsyncDisposable
    {
        public required Cluster.Coordinator.Runs.PreparedRun Run { get; init; }

        public required float[] Expected { get; init; }

        public required ClusterFixture Cluster { get; init; }

        public required FakeWorker Fake { get; init; }

        public required Task Training { get; init; }

        public required StepPlan Plan { get; init; }

        public static async Task<HostileScene> StartAsync(bool blockTensors = false, bool sharedMemory = false, TimeSpan? stepTimeout = null)
        {
            var run = TestRuns.Run(epochs: 1);
            var expected = await TestRuns.SingleProcessAsync(TestRuns.Run(epochs: 1));
            var options = new ClusterOptions { MinWorkers = 1 };
            var cluster = await ClusterFixture.StartAsync(run, stepTimeout is { } timeout ? options with { StepTimeout = timeout } : options);
            var fake = new FakeWorker(cluster.Endpoint.GrpcAddress, "integration-token");
            await fake.JoinAsync("zz-fake", blockTensors, sharedMemory);
            cluster.StartWorker("real");
            await WaitMembersAsync(cluster.Grain, 2);
            var training = cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
            var plan = (await fake.ReadUntilAsync(CoordinatorMessage.BodyOneofCase.Step)).Step;
            return new HostileScene { Run = run, Expected = expected, Cluster = cluster, Fake = fake, Training = training, Plan = plan };
        }

        public async ValueTask DisposeAsync()
        {
            await Fake.DisposeAsync();
            await Cluster.DisposeAsync();
        }
    }

    public static TheoryData<string, GrpcStatusCode> HostileReplies() => new()
    {
        { "wrong-length", GrpcStatusCode.InvalidArgument },
        { "nan", GrpcStatusCode.InvalidArgument },
        { "infinite-loss", GrpcStatusCode.InvalidArgument },
        { "wrong-count", GrpcStatusCode.InvalidArgument },
        { "future-step", GrpcStatusCode.FailedPrecondition },
        { "foreign-shard", GrpcStatusCode.FailedPrecondition },
        { "second-hello", GrpcStatusCode.InvalidArgument },
        { "blocks-not-agreed", GrpcStatusCode.InvalidArgument },
        { "blocks-mask-size", GrpcStatusCode.InvalidArgument },
        { "blocks-short", GrpcStatusCode.InvalidArgument },
        { "blocks-nan", GrpcStatusCode.InvalidArgument },
        { "shared-not-offered", GrpcStatusCode.InvalidArgument },
        { "shared-with-bytes", GrpcStatusCode.InvalidArgument },
        { "shared-other-step", GrpcStatusCode.InvalidArgument },
        { "shared-nan", GrpcStatusCode.InvalidArgument },
    };

    [Theory]
    [MemberData(nameof(HostileReplies))]
    public async Task HostileWorker_GetsItsStatus_AndTheModelIsUntouched(string attack, GrpcStatusCode expectedStatus)
    {
        await using var scene = await HostileScene.StartAsync(
            blockTensors: attack.StartsWith("blocks-", StringComparison.Ordinal) && attack != "blocks-not-agreed",
            sharedMemory: attack.StartsWith("shared-", StringComparison.Ordinal) && attack != "shared-not-offered");
        var (run, expected, cluster, fake, training, plan) = (scene.Run, scene.Expected, scene.Cluster, scene.Fake, scene.Training, scene.Plan);
        var count = plan.Indices.Length / 4;
        var maskBytes = TensorBlocks.MaskBytes(fake.ParameterCount);
        var allBlocks = new byte[maskBytes];
        for (var b = 0; b < TensorBlocks.BlockCount(fake.ParameterCount); b++)
        {
            allBlocks[b >> 3] |= (byte)(1 << (b & 7));
        }

        var good = new GradientResult { Step = plan.Step, Count = count, GradientSum = TensorCodec.FromFloats(new float[fake.ParameterCount]) };
        var message = attack is "foreign-shard" or "second-hello" ? null : good.Clone();
        switch (attack)
        {
            case "wrong-length":
                message!.GradientSum = TensorCodec.FromFloats(new float[fake.ParameterCount - 1]);
                break;
            case "nan":
                var values = new float[fake.ParameterCount];
                values[7] = float.NaN;
                message!.GradientSum = TensorCodec.FromFloats(values);
                break;
            case "infinite-loss":
                message!.LossSum = double.PositiveInfinity;
                break;
            case "wrong-count":
                message!.Count = count + 5;
                break;
            case "future-step":
                message!.Step = plan.Step + 3;
                break;
            case "blocks-not-agreed":
                // A well-formed block gradient (one marked block), from a worker that did not ask for block tensors.
                var one = new byte[maskBytes];
                one[0] = 1;
                message!.GradientMask = ByteString.CopyFrom(one);
                message.GradientSum = TensorCodec.FromFloats(new float[TensorBlocks.BlockFloats]);
                break;
            case "blocks-mask-size":
                message!.GradientMask = ByteString.CopyFrom(allBlocks.AsSpan(1));
                break;
            case "blocks-short":
                message!.GradientMask = ByteString.CopyFrom(allBlocks);
                message.GradientSum = TensorCodec.FromFloats(new float[fake.ParameterCount - 1]);
                break;
            case "blocks-nan":
                var marked = new float[fake.ParameterCount];
                marked[^1] = float.NaN;
                message!.GradientMask = ByteString.CopyFrom(allBlocks);
                message.GradientSum = TensorCodec.FromFloats(marked);
                break;
            case "shared-not-offered":
                // A gradient said to be in shared memory, from a worker that did not ask for (and was not offered) a file.
                Assert.Empty(fake.Admission!.SharedMemoryPath);
                message!.GradientShared = true;
                message.GradientSum = ByteString.Empty;
                break;
            case "shared-with-bytes":
                message!.GradientShared = true;
                break;
            case "shared-other-step" or "shared-nan":
                // The file the admission offered, opened as a worker would, holding a gradient marked with another step,
                // or with a NaN, marked with this one.
                using (var file = SharedTensorFile.Open(fake.Admission!.SharedMemoryPath, fake.Admission.SharedMemoryNonce.Span, fake.ParameterCount))
                {
                    var sum = new float[fake.ParameterCount];
                    sum[3] = attack == "shared-nan" ? float.NaN : 0;
                    file.WriteGradient(attack == "shared-nan" ? plan.Step : plan.Step + 7, sum);
                }

                message!.GradientShared = true;
                message.GradientSum = ByteString.Empty;
                break;
        }

        if (message is not null)
        {
            await fake.SendAsync(new WorkerMessage { Gradient = message });
        }
        else if (attack == "foreign-shard")
        {
            await fake.SendAsync(new WorkerMessage { ShardReady = new ShardReady { Generation = 999 } });
        }
        else
        {
            await fake.SendAsync(new WorkerMessage { Hello = new Hello { WorkerId = "again", ProtocolVersion = 1 } });
        }

        Assert.Equal(expectedStatus, await fake.EndStatusAsync());
        await training;
        AssertExactAccounting(cluster.Grain, 1);
        Assert.True(cluster.Grain.Counters.Failures >= 1);
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
    }

    /// <summary>
    /// Slows each step by 20 ms until the test opens the gate, so the run outlasts the test's moves on a busy machine. It
    /// never holds the loop for long: members are admitted only at step boundaries.
    /// </summary>
    private sealed class SlowUntil(ManualResetEventSlim gate) : ITrainingObserver
    {
        public void OnStep(in StepReport report) => gate.Wait(TimeSpan.FromMilliseconds(20));
    }

    [Fact]
    public async Task WorkerAnsweringNaNAgainAndAgain_IsRefusedAtItsHello_AndItsSiloExitsWith3InsteadOfRetrying()
    {
        // 500 steps, at least 10 s while the gate is closed.
        var run = TestRuns.Run(epochs: 50);
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run(epochs: 50));
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        using var gate = new ManualResetEventSlim();
        cluster.Grain.Trainer.Observe(new SlowUntil(gate));
        cluster.StartWorker("real");
        await WaitMembersAsync(cluster.Grain, 1);
        var training = cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        for (var answers = 1; answers <= CoordinatorGrain.MaxNonFiniteAnswers; answers++)
        {
            // Joins, answers its first step with a NaN while the real worker answers with finite numbers, and is dropped.
            await using var fake = new FakeWorker(cluster.Endpoint.GrpcAddress, "integration-token");
            await fake.JoinAsync("flaky");
            var plan = (await fake.ReadUntilAsync(CoordinatorMessage.BodyOneofCase.Step)).Step;
            var values = new float[fake.ParameterCount];
            values[7] = float.NaN;
            await fake.SendAsync(new WorkerMessage { Gradient = new GradientResult { Step = plan.Step, Count = plan.Indices.Length / 4, GradientSum = TensorCodec.FromFloats(values) } });
            Assert.Equal(GrpcStatusCode.InvalidArgument, await fake.EndStatusAsync());
            var expectedAnswers = answers;
            await TestRuns.WaitForAsync(() => cluster.Grain.Counters.NonFiniteAnswers == expectedAnswers, $"{expectedAnswers} non-finite answers counted",
                () => cluster.Grain.Counters.NonFiniteAnswers.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // Now refused at its hello. Before, it was admitted again each time, at the cost of a re-plan and a shard.
        await using (var refused = new FakeWorker(cluster.Endpoint.GrpcAddress, "integration-token"))
        {
            await refused.JoinAsync("flaky");
            Assert.Equal(GrpcStatusCode.FailedPrecondition, await refused.EndStatusAsync());
            Assert.Contains("not admitted again", refused.EndMessage, StringComparison.Ordinal);
        }

        // A silo so refused exits with 3 (refused) at once. Before, it retried until its connect timeout and exited with 2,
        // saying the coordinator could not be reached.
        using (var worker = new WorkerGrain("flaky"))
        {
            var host = new SiloHost(new WorkerOptions { Coordinator = cluster.Endpoint.GrpcAddress, WorkerId = "flaky", Token = "integration-token", ConnectTimeout = TimeSpan.FromSeconds(3) }, worker, NullLogger.Instance);
            Assert.Equal(3, await host.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(0, host.StepsComputed);
        }

        gate.Set();
        await training;
        AssertExactAccounting(cluster.Grain, 50);
        Assert.Equal(CoordinatorGrain.MaxNonFiniteAnswers, cluster.Grain.Counters.NonFiniteAnswers);
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
    }

    [Fact]
    public async Task WorkerWhoseDataDirCannotGiveItsShard_ExitsWith1_InsteadOfJoiningAgainAndAgain()
    {
        // A run whose workers may load their shard themselves (it is named mnist), and a worker whose --data-dir has no
        // files. The command line checks the folder at start; a silo whose files go missing later fails at its shard.
        var run = TestRuns.Run(epochs: 1) with { DatasetName = "mnist" };
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var training = cluster.Grain.RunAsync(stop.Token);
        var empty = Directory.CreateTempSubdirectory("cluster-no-mnist");
        try
        {
            using var worker = new WorkerGrain("local", dataDir: empty.FullName);
            var host = new SiloHost(new WorkerOptions { Coordinator = cluster.Endpoint.GrpcAddress, WorkerId = "local", Token = "integration-token", ConnectTimeout = TimeSpan.FromSeconds(5) }, worker, NullLogger.Instance);
            // Before, it lost the connection, joined again, was asked for the same shard, and so on until stopped.
            Assert.Equal(1, await host.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(0, host.StepsComputed);
            await TestRuns.WaitForAsync(() => cluster.Grain.Counters.Failures == 1, "the worker's failure to be counted",
                () => cluster.Grain.Counters.Failures.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        finally
        {
            await stop.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => training);
            empty.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task WorkerWhoseMessageLimitCannotTakeTheModel_ExitsWith1AtItsAdmission()
    {
        var run = TestRuns.Run(epochs: 1);
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var training = cluster.Grain.RunAsync(stop.Token);
        using var worker = new WorkerGrain("small");
        // Smaller than a step's weights, which travel on the stream (no shared memory).
        var limit = run.Model.ParameterCount * sizeof(float) - 1;
        var host = new SiloHost(new WorkerOptions { Coordinator = cluster.Endpoint.GrpcAddress, WorkerId = "small", Token = "integration-token", MaxMessageBytes = limit, SharedMemory = false, ConnectTimeout = TimeSpan.FromSeconds(5) }, worker, NullLogger.Instance);
        // Before, the messages it could not take broke its stream, and it joined again and again.
        Assert.Equal(1, await host.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, host.StepsComputed);
        await TestRuns.WaitForAsync(() => cluster.Grain.Counters.Failures + cluster.Grain.Counters.Leaves >= 1, "the worker to be gone",
            () => cluster.Grain.Counters.Failures.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => training);
    }

    [Fact]
    public async Task SilentWorker_DroppedAfterTheStepTimeout_ItsStreamEndsWithAborted()
    {
        await using var scene = await HostileScene.StartAsync(stepTimeout: TimeSpan.FromSeconds(2));
        // The fake holds its step plan and never answers. Before, the dropped worker's stream stayed open and idle to the
        // end of the run, and a live worker never learned to join again.
        Assert.Equal(GrpcStatusCode.Aborted, await scene.Fake.EndStatusAsync());
        await scene.Training;
        AssertExactAccounting(scene.Cluster.Grain, 1);
        TestRuns.AssertClose(scene.Expected, scene.Run.Model.Parameters, 1e-4);
    }

    [Fact]
    public async Task StaleGradient_IsDroppedAndCounted_NotApplied()
    {
        await using var scene = await HostileScene.StartAsync();
        var (run, expected, cluster, fake, training, plan) = (scene.Run, scene.Expected, scene.Cluster, scene.Fake, scene.Training, scene.Plan);
        // An answer for a weight version before this one: dropped; then the fake goes away and its slice is recomputed.
        await fake.SendAsync(new WorkerMessage { Gradient = new GradientResult { Step = plan.Step - 1, Count = 1, GradientSum = TensorCodec.FromFloats(new float[fake.ParameterCount]) } });
        await TestRuns.WaitForAsync(() => cluster.Grain.Counters.LateGradients == 1, "the late gradient to be counted", () => cluster.Grain.Counters.LateGradients.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await fake.DisposeAsync();
        await training;
        AssertExactAccounting(cluster.Grain, 1);
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
    }

    [Fact]
    public async Task Fuzz_RandomAndMutatedFrames_RunStillCompletes()
    {
        var run = Big(epochs: 2);
        var expected = await TestRuns.SingleProcessAsync(Big(epochs: 2));
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 2 });
        cluster.StartWorker("a");
        cluster.StartWorker("b");
        var training = cluster.Grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        var rng = new Random(2024);
        var valid = new[]
        {
            GrpcFraming.Frame(new WorkerMessage { Hello = new Hello { WorkerId = "fuzz", ProtocolVersion = 1 } }),
            GrpcFraming.Frame(new WorkerMessage { Gradient = new GradientResult { Step = 3, Count = 4, GradientSum = ByteString.CopyFrom(new byte[64]) } }),
            GrpcFraming.Frame(new WorkerMessage { ShardReady = new ShardReady { Generation = 1 } }),
            GrpcFraming.Frame(new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 1 } }),
        };
        var statuses = new Dictionary<GrpcStatusCode, int>();
        for (var i = 0; i < 60 && !training.IsCompleted; i++)
        {
            byte[] body;
            switch (i % 3)
            {
                case 0:
                    body = new byte[rng.Next(1, 200)];
                    rng.NextBytes(body);
                    break;
                case 1:
                    body = [.. valid[rng.Next(valid.Length)]];
                    for (var flips = rng.Next(1, 4); flips > 0; flips--)
                    {
                        body[rng.Next(body.Length)] ^= (byte)(1 << rng.Next(8));
                    }

                    break;
                default:
                    body = [.. valid[0], .. valid[rng.Next(1, valid.Length)], .. new byte[rng.Next(0, 7)]];
                    break;
            }

            var status = await RawAsync(cluster.Endpoint.GrpcAddress, body);
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
        }

        await training;
        AssertExactAccounting(cluster.Grain, 2);
        Assert.DoesNotContain(GrpcStatusCode.Unknown, statuses.Keys);
        Assert.True(statuses.Keys.Count(k => k != GrpcStatusCode.Ok) >= 2, string.Join(", ", statuses.Select(p => $"{p.Key}={p.Value}")));
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-4);
    }

    private static async Task<GrpcStatusCode> RawAsync(Uri address, byte[] body)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, GrpcProtocol.JoinPath)) { Version = System.Net.HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(GrpcProtocol.ContentType);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "integration-token");
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        var value = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First() : response.Headers.TryGetValues("grpc-status", out var h) ? h.First() : "2";
        return (GrpcStatusCode)int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
