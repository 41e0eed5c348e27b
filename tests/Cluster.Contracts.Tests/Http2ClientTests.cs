using System.Diagnostics;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.Grpc.Http2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace Cluster.Contracts.Tests;

public sealed class Http2ClientTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    [Theory]
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com")]
    [InlineData("a8eb 1064 9cbf", "no-cache")]
    [InlineData("25a8 49e9 5ba9 7d7f", "custom-key")]
    [InlineData("25a8 49e9 5bb8 e8b4 bf", "custom-value")]
    public void Huffman_DecodesTheRfc7541Examples(string hex, string expected) =>
        Assert.Equal(expected, HpackHuffman.Decode(Hex(hex)));

    [Theory]
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4fe")] // padding that is not all ones
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4ff ff")] // a whole byte of padding
    [InlineData("ffff fffc")] // the EOS symbol
    public void Huffman_RejectsBadPaddingAndEos(string hex) =>
        Assert.Throws<HpackException>(() => HpackHuffman.Decode(Hex(hex)));

    [Fact]
    public void Decoder_FollowsTheRfc7541RequestExamples_WithItsDynamicTable()
    {
        var decoder = new HpackDecoder();
        var first = Decode(decoder, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
        Assert.Equal([new(":method", "GET"), new(":scheme", "http"), new(":path", "/"), new(":authority", "www.example.com")], first);
        var second = Decode(decoder, "8286 84be 5886 a8eb 1064 9cbf");
        Assert.Equal([new(":method", "GET"), new(":scheme", "http"), new(":path", "/"), new(":authority", "www.example.com"), new("cache-control", "no-cache")], second);
        var third = Decode(decoder, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf");
        Assert.Equal([new(":method", "GET"), new(":scheme", "https"), new(":path", "/index.html"), new(":authority", "www.example.com"), new("custom-key", "custom-value")], third);
    }

    [Fact]
    public void Decoder_EvictsTheOldestEntries_AndRejectsIndicesOutsideTheTable()
    {
        // Table of 70 bytes: each entry "aa: bb" costs 36, so the second insertion evicts the first.
        var decoder = new HpackDecoder(maxTableSize: 70);
        Assert.Equal([new HeaderField("aa", "bb")], Decode(decoder, "40 02 6161 02 6262"));
        Assert.Equal([new HeaderField("cc", "dd")], Decode(decoder, "40 02 6363 02 6464"));
        Assert.Equal([new HeaderField("cc", "dd")], Decode(decoder, "be"));
        Assert.Throws<HpackException>(() => Decode(decoder, "bf"));
        Assert.Throws<HpackException>(() => Decode(decoder, "80"));
        Assert.Throws<HpackException>(() => Decode(decoder, "40 05 6161"));
        Assert.Throws<HpackException>(() => Decode(decoder, "3f e1 1f")); // a table size above the advertised one
    }

    [Fact]
    public void Encoder_BlocksDecodeToTheSameFields()
    {
        var block = new List<byte>();
        HeaderField[] fields = [new(":method", "POST"), new(":scheme", "http"), new(":path", "/cluster.v1.Coordinator/Join"), new("authorization", "Bearer " + new string('x', 300))];
        foreach (var (name, value) in fields)
        {
            HpackEncoder.Write(block, name, value);
        }

        var decoded = new List<HeaderField>();
        new HpackDecoder().Decode(block.ToArray(), decoded);
        Assert.Equal(fields, decoded);
    }

    private static List<HeaderField> Decode(HpackDecoder decoder, string hex)
    {
        var fields = new List<HeaderField>();
        decoder.Decode(Hex(hex), fields);
        return fields;
    }

    [Fact]
    public async Task Client_TalksToPythonGrpcio_UnaryErrorsLargeMessagesAndStreams()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "grpcio_echo_server.py");
        var portFile = Path.Combine(Path.GetTempPath(), $"grpcio-port-{Guid.NewGuid():N}");
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(portFile);
        psi.Environment["no_proxy"] = "*";
        using var server = Process.Start(psi)!;
        var errors = server.StandardError.ReadToEndAsync();
        try
        {
            var waited = Stopwatch.StartNew();
            while (!File.Exists(portFile) && !server.HasExited && waited.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(50);
            }

            Assert.True(File.Exists(portFile), $"the grpcio server did not start: {(server.HasExited ? await errors : "no port after 60 s")}");
            var port = int.Parse(await File.ReadAllTextAsync(portFile), System.Globalization.CultureInfo.InvariantCulture);
            await using var client = new GrpcClient(new Uri($"http://127.0.0.1:{port}"));

            // Unary, small and large both ways (grpcio uses 16 KiB frames and small windows: many frames and WINDOW_UPDATEs).
            var small = new BytesValue { Value = ByteString.CopyFromUtf8("hello") };
            Assert.Equal(small, await client.UnaryAsync("/test.Echo/Echo", small, BytesValue.Parser, TimeSpan.FromSeconds(30)));
            var payload = new byte[3 * 1024 * 1024 + 17];
            Random.Shared.NextBytes(payload);
            var large = new BytesValue { Value = ByteString.CopyFrom(payload) };
            Assert.Equal(large, await client.UnaryAsync("/test.Echo/Echo", large, BytesValue.Parser, TimeSpan.FromSeconds(30)));
            var big = await client.UnaryAsync("/test.Echo/Big", new BytesValue { Value = ByteString.CopyFromUtf8("20000000") }, BytesValue.Parser, TimeSpan.FromSeconds(60));
            Assert.Equal(20_000_000, big.Value.Length);
            Assert.Equal((byte)(12_345_678L * 7 % 251), big.Value[12_345_678]);

            // A failed call: status and percent-decoded message from the trailers.
            var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.UnaryAsync("/test.Echo/Fail", small, BytesValue.Parser, TimeSpan.FromSeconds(30)));
            Assert.Equal(GrpcStatusCode.InvalidArgument, ex.Status);
            Assert.Equal("bad input: 100% wrong \u00fc", ex.Message);
            var unknown = await Assert.ThrowsAsync<GrpcStatusException>(() => client.UnaryAsync("/test.Echo/Nope", small, BytesValue.Parser, TimeSpan.FromSeconds(30)));
            Assert.Equal(GrpcStatusCode.Unimplemented, unknown.Status);

            // A bidirectional stream: every message comes back in order, including one written with a tensor appended.
            await using var call = await client.DuplexAsync("/test.Echo/Chat", BytesValue.Parser);
            for (var i = 0; i < 5; i++)
            {
                var m = new BytesValue { Value = ByteString.CopyFrom(payload.AsSpan(0, i * 300_000 + 1)) };
                await call.WriteAsync(m, CancellationToken.None);
                Assert.Equal(m, await call.ReadAsync(CancellationToken.None));
            }

            call.CompleteWrites();
            Assert.Null(await call.ReadAsync(CancellationToken.None));
        }
        catch (Exception ex)
        {
            // The server's own account goes with the failure: what grpcio saw is half of any interop problem.
            server.StandardInput.Close();
            var stderr = server.WaitForExit(10_000) ? await errors : "(the server was still running)";
            throw new InvalidOperationException($"{ex.GetType().Name}: {ex.Message}\n--- grpcio server stderr ---\n{stderr}", ex);
        }
        finally
        {
            server.StandardInput.Close();
            if (!server.WaitForExit(10_000))
            {
                server.Kill();
            }

            File.Delete(portFile);
        }
    }

    [Fact]
    public async Task Client_ReportsAnUnreachableServerAsUnavailable()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var client = new GrpcClient(new Uri($"http://127.0.0.1:{port}"));
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.UnaryAsync("/test.Echo/Echo", new BytesValue(), BytesValue.Parser, TimeSpan.FromSeconds(10)));
        Assert.Equal(GrpcStatusCode.Unavailable, ex.Status);
    }

    /// <summary>A raw TCP "server" that completes the HTTP/2 handshake and then does what the test says.</summary>
    private static async Task<(System.Net.Sockets.TcpListener Listener, Task<System.Net.Sockets.Socket> Accepted)> RawServerAsync()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        async Task<System.Net.Sockets.Socket> AcceptAsync()
        {
            var socket = await listener.AcceptSocketAsync();
            // Client preface (24 bytes) and its SETTINGS frame are read; the server's empty SETTINGS is sent.
            var buffer = new byte[24 + 9];
            var got = 0;
            while (got < buffer.Length)
            {
                got += await socket.ReceiveAsync(buffer.AsMemory(got));
            }

            var settingsLength = (buffer[24] << 16) | (buffer[25] << 8) | buffer[26];
            var rest = new byte[settingsLength];
            got = 0;
            while (got < rest.Length)
            {
                got += await socket.ReceiveAsync(rest.AsMemory(got));
            }

            await socket.SendAsync(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0, 0 });
            return socket;
        }

        await Task.Yield();
        return (listener, AcceptAsync());
    }

    private static readonly HeaderField[] RequestHeaders = [new(":method", "POST"), new(":scheme", "http"), new(":path", "/t/T"), new(":authority", "x")];

    [Fact]
    public async Task Connection_DeclaresASilentServerDead_AfterAnUnansweredPing()
    {
        var (listener, accepted) = await RawServerAsync();
        try
        {
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            var settings = new Http2ClientSettings { KeepAlivePingDelay = TimeSpan.FromMilliseconds(200), KeepAlivePingTimeout = TimeSpan.FromMilliseconds(300) };
            await using var connection = await Http2ClientConnection.ConnectAsync("127.0.0.1", port, settings, CancellationToken.None);
            using var server = await accepted;
            var stream = await connection.OpenStreamAsync(RequestHeaders, endStream: false, CancellationToken.None);
            var ex = await Assert.ThrowsAsync<IOException>(() => stream.ResponseHeaders.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("keep-alive ping", ex.Message, StringComparison.Ordinal);
            Assert.False(connection.IsUsable);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task Stream_WithAnInlineReader_ResumesItBeforeTheReadLoopTakesTheNextFrame()
    {
        var (listener, accepted) = await RawServerAsync();
        try
        {
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            await using var connection = await Http2ClientConnection.ConnectAsync("127.0.0.1", port, new Http2ClientSettings(), CancellationToken.None);
            using var server = await accepted;
            var stream = await connection.OpenStreamAsync(RequestHeaders, endStream: false, CancellationToken.None);
            stream.InlineReader = true;
            await server.SendAsync(Hex("00 00 01 01 04 00 00 00 01 88")); // HEADERS :status 200
            await stream.ResponseHeaders.WaitAsync(TimeSpan.FromSeconds(30));

            // The reader waits first; then DATA and the trailers arrive in one write, so the read loop has both at hand.
            var buffer = new byte[16];
            var read = stream.ReadAsync(buffer, CancellationToken.None);
            Assert.False(read.IsCompleted);
            await server.SendAsync(Hex("00 00 05 00 00 00 00 00 01 68 65 6c 6c 6f" // DATA "hello"
                + " 00 00 0f 01 05 00 00 00 01 00 0b 67 72 70 63 2d 73 74 61 74 75 73 01 30")); // HEADERS grpc-status: 0, END_STREAM
            var (text, trailersSeen) = await ResumeAndLookAsync(read, stream, buffer);

            // Resumed inside the read loop's hand-over of the DATA frame: the trailers right behind it are not read yet.
            Assert.Equal("hello", text);
            Assert.False(trailersSeen);

            // The end of the stream still reaches an inline reader (handed over through the thread pool).
            var end = await stream.ReadAsync(buffer, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, end);
            Assert.Equal("0", Assert.Single(stream.Trailers!).Value);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task Unary_ReportsTheServersStatus_WhenTheServerAnswersAndResetsBeforeTheRequestIsSent()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            await ReceiveExactlyAsync(socket, 24); // the client preface
            // A send window of 0: the request's DATA must wait, so the answer below always arrives first.
            await socket.SendAsync(Hex("00 00 06 04 00 00 00 00 00 00 04 00 00 00 00"));
            while (true)
            {
                var header = await ReceiveExactlyAsync(socket, 9);
                await ReceiveExactlyAsync(socket, (header[0] << 16) | (header[1] << 8) | header[2]);
                if (header[3] == 1)
                {
                    break; // the request's HEADERS
                }
            }

            // What a server does for a method it does not serve: a trailers-only answer, then RST_STREAM(NO_ERROR).
            var block = new List<byte>();
            HpackEncoder.Write(block, ":status", "200");
            HpackEncoder.Write(block, "content-type", "application/grpc");
            HpackEncoder.Write(block, "grpc-status", "12");
            HpackEncoder.Write(block, "grpc-message", "no such method");
            var frames = new List<byte> { 0, 0, (byte)block.Count, 1, 5, 0, 0, 0, 1 };
            frames.AddRange(block);
            frames.AddRange(Hex("00 00 04 03 00 00 00 00 01 00 00 00 00"));
            await socket.SendAsync(frames.ToArray());
            // Open until the client has read all of it and hangs up.
            var sink = new byte[1024];
            using var linger = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await socket.ReceiveAsync(sink, linger.Token) > 0)
            {
            }
        });

        try
        {
            await using (var client = new GrpcClient(new Uri($"http://127.0.0.1:{port}")))
            {
                var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.UnaryAsync("/t/Nope", new BytesValue(), BytesValue.Parser, TimeSpan.FromSeconds(20)));
                Assert.Equal(GrpcStatusCode.Unimplemented, ex.Status);
                Assert.Contains("no such method", ex.Message, StringComparison.Ordinal);
            }

            await server.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            listener.Stop();
        }
    }

    private static async Task<byte[]> ReceiveExactlyAsync(System.Net.Sockets.Socket socket, int count)
    {
        var buffer = new byte[count];
        var got = 0;
        while (got < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got));
            if (n == 0)
            {
                throw new IOException("The client closed the connection.");
            }

            got += n;
        }

        return buffer;
    }

    private static byte[] Join(params byte[][] parts) => [.. parts.SelectMany(p => p)];

    /// <summary>A DATA frame on stream 1 carrying <paramref name="payload"/>.</summary>
    private static byte[] Data(byte[] payload, bool endStream = false)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[4] = (byte)(endStream ? 1 : 0);
        frame[8] = 1;
        payload.CopyTo(frame, 9);
        return frame;
    }

    /// <summary>A gRPC message: its 5-byte prefix, then <paramref name="length"/> bytes counting up from <paramref name="seed"/>.</summary>
    private static byte[] Message(int length, byte seed)
    {
        var m = new byte[5 + length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(m.AsSpan(1), length);
        for (var i = 0; i < length; i++)
        {
            m[5 + i] = (byte)(seed + i);
        }

        return m;
    }

    /// <summary>The next message as a duplex call reads it: lent in place where it can be, copied out where not.</summary>
    private static ValueTask<ReadOnlyMemory<byte>?> ReadMessageAsync(Http2ClientStream stream, int maxMessageBytes) =>
        new DuplexCall<BytesValue>(stream, BytesValue.Parser, maxMessageBytes).ReadFrameAsync(CancellationToken.None);

    private static async Task<(Http2ClientConnection Connection, System.Net.Sockets.Socket Server, Http2ClientStream Stream, System.Net.Sockets.TcpListener Listener)> OpenRawStreamAsync(int receiveWindow)
    {
        var (listener, accepted) = await RawServerAsync();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var connection = await Http2ClientConnection.ConnectAsync("127.0.0.1", port, new Http2ClientSettings { ReceiveWindow = receiveWindow }, CancellationToken.None);
        var server = await accepted;
        var stream = await connection.OpenStreamAsync(RequestHeaders, endStream: false, CancellationToken.None);
        await server.SendAsync(Hex("00 00 01 01 04 00 00 00 01 88")); // HEADERS :status 200
        return (connection, server, stream, listener);
    }

    [Fact]
    public async Task ReadMessage_LendsWholeMessagesInPlace_AndALentMessageSurvivesTheBufferMakingRoom()
    {
        var (connection, server, stream, listener) = await OpenRawStreamAsync(16 * 1024 * 1024);
        await using var _ = connection;
        using var __ = server;
        try
        {
            var z = Message(100, 1);
            var a = Message(10, 50);
            var b = Message(100, 200);
            await server.SendAsync(Data(Join(z, a)));
            Assert.Equal(z[5..], (await ReadMessageAsync(stream, 1 << 20))!.Value.ToArray());
            var lent = (await ReadMessageAsync(stream, 1 << 20))!.Value;
            Assert.Equal(a[5..], lent.ToArray());

            // b needs the room that z left: the buffer must not slide a's lent bytes down to make it.
            await server.SendAsync(Data(b[..3]));
            await server.SendAsync(Data(b[3..]));
            var waited = Stopwatch.StartNew();
            while (stream.BufferedBytes < a.Length + b.Length && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(5);
            }

            Assert.Equal(a.Length + b.Length, stream.BufferedBytes);
            var third = await ReadMessageAsync(stream, 1 << 20).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(a[5..], lent.ToArray());
            Assert.Equal(b[5..], third!.Value.ToArray());

            // A message split over frames, then the clean end of the body.
            var c = Message(1000, 7);
            await server.SendAsync(Join(Data(c[..600]), Data(c[600..]), Hex("00 00 0f 01 05 00 00 00 01 00 0b 67 72 70 63 2d 73 74 61 74 75 73 01 30")));
            Assert.Equal(c[5..], (await ReadMessageAsync(stream, 1 << 20))!.Value.ToArray());
            Assert.Null(await ReadMessageAsync(stream, 1 << 20).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task ReadMessage_GathersAMessageOverHalfTheWindow_AndReportsTruncationAndOversize()
    {
        var (connection, server, stream, listener) = await OpenRawStreamAsync(65536);
        await using var _ = connection;
        using var __ = server;
        try
        {
            // Over half of a 64 KiB window: copied out as it arrives rather than waited for in the buffer.
            var big = Message(40_000, 3);
            await server.SendAsync(Join(Data(big[..16000]), Data(big[16000..])));
            Assert.Equal(big[5..], (await ReadMessageAsync(stream, 1 << 20).AsTask().WaitAsync(TimeSpan.FromSeconds(30)))!.Value.ToArray());

            var tooLarge = await Assert.ThrowsAsync<GrpcStatusException>(async () =>
            {
                await server.SendAsync(Data(Message(200, 0)));
                await ReadMessageAsync(stream, 100);
            });
            Assert.Equal(GrpcStatusCode.ResourceExhausted, tooLarge.Status);
        }
        finally
        {
            listener.Stop();
        }

        var (connection2, server2, stream2, listener2) = await OpenRawStreamAsync(65536);
        await using var ___ = connection2;
        using var ____ = server2;
        try
        {
            await server2.SendAsync(Data(Message(50, 0)[..25], endStream: true));
            var truncated = await Assert.ThrowsAsync<GrpcStatusException>(async () => await ReadMessageAsync(stream2, 1 << 20).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(GrpcStatusCode.Internal, truncated.Status);
            Assert.Equal("Truncated frame: the message says 50 bytes but the stream ended after 20.", truncated.Message);
        }
        finally
        {
            listener2.Stop();
        }
    }

    /// <summary>Awaits the read without returning to the test's context, and looks at the stream the moment it resumes.</summary>
    private static async Task<(string Text, bool TrailersSeen)> ResumeAndLookAsync(ValueTask<int> read, Http2ClientStream stream, byte[] buffer)
    {
        var n = await read.ConfigureAwait(false);
        return (System.Text.Encoding.ASCII.GetString(buffer, 0, n), stream.Trailers is not null);
    }

    [Theory]
    [InlineData("00 00 02 01 05 00 00 00 01 bf 80", "Malformed header block")] // HEADERS whose HPACK index is not in any table
    [InlineData("00 00 05 06 00 00 00 00 00 00 00 00 00 00", "Malformed PING")] // a PING of 5 bytes
    [InlineData("00 00 00 09 04 00 00 00 01", "CONTINUATION without a HEADERS frame")]
    [InlineData("ff ff ff 00 00 00 00 00 01", "frame; the limit is")] // a DATA frame over the advertised limit
    public async Task Connection_FailsWithAClearError_OnMalformedFramesFromTheServer(string frameHex, string expected)
    {
        var (listener, accepted) = await RawServerAsync();
        try
        {
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            await using var connection = await Http2ClientConnection.ConnectAsync("127.0.0.1", port, new Http2ClientSettings { MaxFrameSize = 1 << 20 }, CancellationToken.None);
            using var server = await accepted;
            var stream = await connection.OpenStreamAsync(RequestHeaders, endStream: false, CancellationToken.None);
            await server.SendAsync(Hex(frameHex));
            var ex = await Assert.ThrowsAsync<IOException>(() => stream.ResponseHeaders.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
            Assert.False(connection.IsUsable);
        }
        finally
        {
            listener.Stop();
        }
    }
}
