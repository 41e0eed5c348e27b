using Cluster.Tests.Shared;
using System.Net;
using System.Net.Http.Headers;
using Cluster.Compute.Backends;
using Cluster.Contracts.Grpc;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Coordinator.Tests;

/// <summary>A coordinator endpoint on 127.0.0.1 with a token and a message limit (small by default), for protocol tests.</summary>
public sealed class EndpointFixture : IAsyncLifetime
{
    public const string Token = "s3cret-token";
    public const int MaxMessageBytes = 64 * 1024;
    private readonly ManagedBackend _eval = new(1);
    private readonly int _maxMessageBytes;

    public EndpointFixture()
        : this(MaxMessageBytes)
    {
    }

    /// <summary>An endpoint with another message limit, for a test that starts its own (xUnit sees only the public constructor).</summary>
    internal EndpointFixture(int maxMessageBytes) => _maxMessageBytes = maxMessageBytes;

    internal CoordinatorGrain Grain { get; private set; } = null!;

    public CoordinatorEndpoint Endpoint { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var run = TestRuns.Run();
        Grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = 1 }, _eval, NullLogger.Instance);
        Endpoint = await CoordinatorEndpoint.StartAsync(Grain, new EndpointOptions { Listen = new Uri("http://127.0.0.1:0"), Token = Token, MaxMessageBytes = _maxMessageBytes }, NullLoggerFactory.Instance, run.Model.ParameterCount);
    }

    public async Task DisposeAsync()
    {
        await Endpoint.DisposeAsync();
        _eval.Dispose();
    }

    /// <summary>Sends raw bytes as a gRPC request body and returns the status the server ended with.</summary>
    public async Task<(GrpcStatusCode Status, string Message, HttpStatusCode Http)> RawAsync(string path, byte[] body, string? token = null, string contentType = GrpcProtocol.ContentType, string? timeout = null)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Endpoint.GrpcAddress, path)) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (timeout is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-timeout", timeout);
        }

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        string? Get(string name) => response.TrailingHeaders.TryGetValues(name, out var t) ? t.First() : response.Headers.TryGetValues(name, out var h) ? h.First() : null;
        var status = Get("grpc-status") ?? "missing";
        return (status == "missing" ? (GrpcStatusCode)(-1) : (GrpcStatusCode)int.Parse(status, System.Globalization.CultureInfo.InvariantCulture), GrpcProtocol.DecodeMessage(Get("grpc-message")), response.StatusCode);
    }
}
