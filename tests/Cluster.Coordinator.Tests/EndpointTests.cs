using System.Buffers.Binary;
using System.Diagnostics;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.Coordinator.Tests;

public sealed class EndpointTests(EndpointFixture fixture) : IClassFixture<EndpointFixture>
{
    [Fact]
    public async Task GetStatus_WithoutToken_Answers()
    {
        await using var client = new GrpcClient(fixture.Endpoint.GrpcAddress);
        var reply = await client.UnaryAsync(GrpcProtocol.GetStatusPath, new StatusRequest(), StatusReply.Parser, TimeSpan.FromSeconds(10));
        Assert.Equal("waiting", reply.State);
        Assert.Equal(2, reply.Epochs);
        Assert.Equal(0, reply.Workers);
        Assert.StartsWith("run-", reply.RunId);
    }

    [Fact]
    public async Task UnknownMethod_IsUnimplemented()
    {
        var (status, message, _) = await fixture.RawAsync("/cluster.v1.Coordinator/Nope", GrpcFraming.Frame(new StatusRequest()));
        Assert.Equal(GrpcStatusCode.Unimplemented, status);
        Assert.Contains("/cluster.v1.Coordinator/Nope", message);
        await using var client = new GrpcClient(fixture.Endpoint.GrpcAddress);
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.UnaryAsync("/other.Service/Call", new StatusRequest(), StatusReply.Parser));
        Assert.Equal(GrpcStatusCode.Unimplemented, ex.Status);
    }

    [Fact]
    public async Task TruncatedFrame_IsInternal()
    {
        var frame = GrpcFraming.Frame(new StatusRequest());
        var (status, message, _) = await fixture.RawAsync(GrpcProtocol.GetStatusPath, [0, 0, 0]);
        Assert.Equal(GrpcStatusCode.Internal, status);
        Assert.Contains("Truncated", message);
        var body = new byte[] { 0, 0, 0, 0, 10, 1, 2 };
        (status, message, _) = await fixture.RawAsync(GrpcProtocol.GetStatusPath, body);
        Assert.Equal(GrpcStatusCode.Internal, status);
        Assert.Contains("says 10 bytes", message);
        Assert.NotNull(frame);
    }

    [Fact]
    public async Task GarbageMessage_IsInternal()
    {
        var garbage = new byte[] { 0, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF };
        var (status, message, _) = await fixture.RawAsync(GrpcProtocol.GetStatusPath, garbage);
        Assert.Equal(GrpcStatusCode.Internal, status);
        Assert.Contains("Malformed", message);
    }

    [Fact]
    public async Task MessageLimitTooSmallForTheModel_IsRefusedBeforeListening()
    {
        // Before, every gradient got RESOURCE_EXHAUSTED and every worker joined again, for as long as the run was left.
        var needed = GrpcProtocol.NeededMessageBytes(Cluster.Tests.Shared.TestRuns.Run().Model.ParameterCount);
        var small = new EndpointFixture((int)needed - 1);
        var error = await Assert.ThrowsAsync<ArgumentException>(small.InitializeAsync);
        Assert.Contains("is too small for this model", error.Message);
        var enough = new EndpointFixture((int)needed);
        await enough.InitializeAsync();
        await enough.DisposeAsync();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(2048)]
    public void MaxMessageMegabytes_OutOfRange_IsRefused(int megabytes)
    {
        // Before, 0 meant 1 MiB without a word, and 2048 overflowed.
        var error = Assert.Throws<ArgumentException>(() => GrpcProtocol.MaxMessageBytesOf(megabytes));
        Assert.Equal($"--max-message-mb must be 1 to 2047 (MiB), not {megabytes}.", error.Message);
        Assert.Equal(2047 << 20, GrpcProtocol.MaxMessageBytesOf(2047));
    }

    [Fact]
    public async Task OversizedMessage_IsResourceExhausted()
    {
        var header = new byte[5];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), EndpointFixture.MaxMessageBytes + 1);
        var (status, message, _) = await fixture.RawAsync(GrpcProtocol.JoinPath, header, EndpointFixture.Token);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, status);
        Assert.Contains("larger than max", message);
        // A real oversized hello, not just a prefix that claims one.
        var hello = new WorkerMessage { Hello = new Hello { WorkerId = new string('x', EndpointFixture.MaxMessageBytes) } };
        (status, _, _) = await fixture.RawAsync(GrpcProtocol.JoinPath, GrpcFraming.Frame(hello), EndpointFixture.Token);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, status);
    }

    [Fact]
    public async Task CompressedFlag_IsUnimplemented()
    {
        var frame = GrpcFraming.Frame(new StatusRequest());
        frame[0] = 1;
        var (status, _, _) = await fixture.RawAsync(GrpcProtocol.GetStatusPath, frame);
        Assert.Equal(GrpcStatusCode.Unimplemented, status);
    }

    [Fact]
    public async Task WrongContentType_IsRefused()
    {
        var (status, _, http) = await fixture.RawAsync(GrpcProtocol.GetStatusPath, GrpcFraming.Frame(new StatusRequest()), contentType: "application/json");
        Assert.Equal(System.Net.HttpStatusCode.UnsupportedMediaType, http);
        Assert.Equal(GrpcStatusCode.Internal, status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong")]
    [InlineData("s3cret-token-and-more")]
    public async Task Join_WithoutTheToken_IsUnauthenticated_AndAddsNoMember(string? token)
    {
        var hello = new WorkerMessage { Hello = new Hello { WorkerId = "intruder", ProtocolVersion = 1 } };
        var (status, _, _) = await fixture.RawAsync(GrpcProtocol.JoinPath, GrpcFraming.Frame(hello), token);
        Assert.Equal(GrpcStatusCode.Unauthenticated, status);
        var reply = await fixture.Grain.GetStatusAsync();
        Assert.DoesNotContain(reply.Members, m => m.WorkerId == "intruder");
    }

    [Fact]
    public async Task Join_NotStartingWithHello_IsInvalidArgument()
    {
        var heartbeat = new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 1 } };
        var (status, message, _) = await fixture.RawAsync(GrpcProtocol.JoinPath, GrpcFraming.Frame(heartbeat), EndpointFixture.Token);
        Assert.Equal(GrpcStatusCode.InvalidArgument, status);
        Assert.Contains("hello", message);
    }

    [Fact]
    public async Task MessageLargerThanTheStreamWindow_IsReadWhole()
    {
        // The server's HTTP/2 windows are 16 MiB (stream) and 32 MiB (connection), and the message is read in place:
        // a 40 MB message arrives only if credit comes back before the message is whole and consumed. It is read to
        // its end, parsed, and refused for what it is.
        var large = new EndpointFixture(64 << 20);
        await large.InitializeAsync();
        try
        {
            var values = new byte[40_000_000];
            new Random(3).NextBytes(values);
            var big = new WorkerMessage { Gradient = new GradientResult { Step = 1, GradientSum = ByteString.CopyFrom(values), Count = 1 } };
            var (status, message, _) = await large.RawAsync(GrpcProtocol.JoinPath, GrpcFraming.Frame(big), EndpointFixture.Token).WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Equal(GrpcStatusCode.InvalidArgument, status);
            Assert.Contains("hello", message);
        }
        finally
        {
            await large.DisposeAsync();
        }
    }

    [Fact]
    public async Task Deadline_PassedWhileWaiting_IsDeadlineExceeded()
    {
        // An open stream that never sends its hello: the server gives up at the caller's deadline.
        await using var client = new GrpcClient(fixture.Endpoint.GrpcAddress, new GrpcClientOptions { Token = EndpointFixture.Token });
        using var http = new HttpClient();
        var content = new StreamingBody();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fixture.Endpoint.GrpcAddress, GrpcProtocol.JoinPath)) { Version = System.Net.HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = content };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", EndpointFixture.Token);
        request.Headers.TryAddWithoutValidation("grpc-timeout", "300m");
        var clock = Stopwatch.StartNew();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await response.Content.ReadAsByteArrayAsync();
        content.Finish();
        var status = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First() : response.Headers.GetValues("grpc-status").First();
        Assert.Equal(((int)GrpcStatusCode.DeadlineExceeded).ToString(System.Globalization.CultureInfo.InvariantCulture), status);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), $"ended after {clock.Elapsed}");
    }

    [Fact]
    public void Timeouts_ParseAndFormat()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(250), GrpcProtocol.ParseTimeout("250m"));
        Assert.Equal(TimeSpan.FromSeconds(30), GrpcProtocol.ParseTimeout("30S"));
        Assert.Equal(TimeSpan.FromHours(1), GrpcProtocol.ParseTimeout("1H"));
        Assert.Null(GrpcProtocol.ParseTimeout("30"));
        Assert.Null(GrpcProtocol.ParseTimeout("123456789S"));
        Assert.Null(GrpcProtocol.ParseTimeout("-1S"));
        Assert.Equal("1500m", GrpcProtocol.FormatTimeout(TimeSpan.FromSeconds(1.5)));
        Assert.Equal("a%25b%0A", GrpcProtocol.EncodeMessage("a%b\n"));
        Assert.Equal("a%b\n", GrpcProtocol.DecodeMessage("a%25b%0A"));
    }

    private sealed class StreamingBody : HttpContent
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public StreamingBody() => Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(GrpcProtocol.ContentType);

        public void Finish() => _done.TrySetResult();

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => _done.Task;

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task PythonGrpcio_GetStatus_Works()
    {
        var protoc = Protoc.Find();
        var dir = Directory.CreateTempSubdirectory("grpcio-test").FullName;
        try
        {
            var descriptor = Path.Combine(dir, "cluster.pb");
            var protoDir = Path.Combine(AppContext.BaseDirectory, "Protos");
            Run(protoc, $"--descriptor_set_out={descriptor} --include_imports -I{protoDir} {Path.Combine(protoDir, "cluster.proto")}");
            var script = Path.Combine(AppContext.BaseDirectory, "grpcio_status.py");
            var output = Run("/usr/bin/python3", $"{script} {descriptor} 127.0.0.1:{fixture.Endpoint.GrpcAddress.Port}");
            using var json = System.Text.Json.JsonDocument.Parse(output);
            Assert.Equal("waiting", json.RootElement.GetProperty("state").GetString());
            Assert.Equal(2, json.RootElement.GetProperty("epochs").GetInt32());
            Assert.StartsWith("run-", json.RootElement.GetProperty("runId").GetString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static string Run(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["no_proxy"] = "*";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), $"{file} did not finish");
        Assert.True(p.ExitCode == 0, $"{file} {args} failed ({p.ExitCode}): {stderr.Result}");
        return stdout.Result;
    }
}
