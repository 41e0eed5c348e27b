using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;

namespace Cluster.IntegrationTests;

/// <summary>A hand-driven worker speaking the raw protocol, for hostile-input tests.</summary>
internal sealed class FakeWorker : IAsyncDisposable
{
    private readonly GrpcClient _client;
    private DuplexCall<CoordinatorMessage>? _call;

    public FakeWorker(Uri coordinator, string token) => _client = new GrpcClient(coordinator, new GrpcClientOptions { Token = token });

    public int ParameterCount { get; private set; }

    /// <summary>The last admission that admitted this worker.</summary>
    public Admission? Admission { get; private set; }

    public async Task JoinAsync(string id, bool blockTensors = false, bool sharedMemory = false)
    {
        _call = await _client.DuplexAsync(GrpcProtocol.JoinPath, CoordinatorMessage.Parser);
        await SendAsync(new WorkerMessage { Hello = new Hello { WorkerId = id, ProtocolVersion = 1, BlockTensors = blockTensors, SharedMemory = sharedMemory } });
    }

    public Task SendAsync(WorkerMessage message) => _call!.WriteAsync(message, CancellationToken.None).AsTask();

    /// <summary>Reads until a message of the wanted kind arrives (answering shards honestly on the way).</summary>
    public async Task<CoordinatorMessage> ReadUntilAsync(CoordinatorMessage.BodyOneofCase kind)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var message = await _call!.ReadAsync(timeout.Token) ?? throw new InvalidOperationException("The stream ended with OK.");
            if (message.BodyCase == CoordinatorMessage.BodyOneofCase.Admission && message.Admission.Admitted)
            {
                ParameterCount = Compute.Models.ModelJson.Import(message.Admission.ModelJson, requireWeights: false).ParameterCount;
                Admission = message.Admission;
            }

            if (message.BodyCase == kind)
            {
                return message;
            }

            if (message.BodyCase == CoordinatorMessage.BodyOneofCase.Shard && message.Shard.Last)
            {
                await SendAsync(new WorkerMessage { ShardReady = new ShardReady { Generation = message.Shard.Generation } });
            }
        }
    }

    /// <summary>The message of the status the stream ended with (after <see cref="EndStatusAsync"/>).</summary>
    public string EndMessage { get; private set; } = "";

    /// <summary>Reads until the stream ends; returns the status it ended with.</summary>
    public async Task<GrpcStatusCode> EndStatusAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await _call!.ReadAsync(timeout.Token) is not null)
            {
            }

            return GrpcStatusCode.Ok;
        }
        catch (GrpcStatusException ex)
        {
            EndMessage = ex.Message;
            return ex.Status;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_call is not null)
        {
            await _call.DisposeAsync();
        }

        _client.Dispose();
    }
}
