using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Cluster.Contracts.Grpc.Http2;

/// <summary>How an <see cref="Http2ClientConnection"/> connects.</summary>
public sealed record Http2ClientSettings
{
    /// <summary>TLS options for https:// (ALPN h2 is added); null for cleartext.</summary>
    public SslClientAuthenticationOptions? Tls { get; init; }

    /// <summary>Time allowed for TCP connect, TLS handshake and the server's first SETTINGS.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE) and of the connection.</summary>
    public int ReceiveWindow { get; init; } = 16 * 1024 * 1024;

    /// <summary>Largest frame accepted from the server (SETTINGS_MAX_FRAME_SIZE): megabyte tensors arrive in one frame.</summary>
    public int MaxFrameSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>With streams open and nothing heard for this long, a PING is sent; <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long an unanswered PING may stay unanswered before the connection is declared dead.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// The client end of one HTTP/2 connection (RFC 9113) for gRPC: h2c with prior knowledge or TLS with ALPN,
/// multiplexed streams, flow control both ways, HPACK, keep-alive pings and GOAWAY. Built for megabyte messages: it
/// advertises large windows and frames, sends a message as few DATA frames as the server's limits allow with one
/// gathered write, and reads DATA payloads straight into the stream's buffer.
/// </summary>
public sealed class Http2ClientConnection : IAsyncDisposable
{
    internal const byte Data = 0, Headers = 1, RstStream = 3, Settings = 4, PushPromise = 5, Ping = 6, GoAway = 7, WindowUpdate = 8, Continuation = 9;
    internal const byte EndStream = 0x1, Ack = 0x1, EndHeaders = 0x4, Padded = 0x8, PriorityFlag = 0x20;
    internal const int ProtocolError = 1, FlowControlError = 3, FrameSizeError = 6, Cancel = 8, CompressionError = 9;
    private const int FrameHeaderSize = 9;
    private const int DefaultWindow = 65535;
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly bool _plain;
    private readonly Http2ClientSettings _settings;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _sync = new();
    private readonly Dictionary<int, Http2ClientStream> _streams = [];
    private readonly HpackDecoder _decoder = new();
    private readonly byte[] _readBuffer = new byte[64 * 1024];
    private readonly byte[] _dataHeader = new byte[FrameHeaderSize];
    private readonly List<ArraySegment<byte>> _segments = new(3);
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Never disposed: it has no timer, and a late failure on the read loop may still cancel it.
    private readonly CancellationTokenSource _closing = new();
    private int _readStart;
    private int _readEnd;
    private int _nextStreamId = 1;
    private int _peerMaxFrameSize = 16384;
    private int _peerInitialWindow = DefaultWindow;
    private long _sendWindow = DefaultWindow;
    private int _peerMaxStreams = int.MaxValue;
    private int _unackedReceive;
    private TaskCompletionSource? _windowWaiter;
    private Exception? _failure;
    private bool _goAway;
    private long _lastHeard;
    private Task _readLoop = Task.CompletedTask;
    private Task _pingLoop = Task.CompletedTask;
    private long _pingPayload;
    private TaskCompletionSource? _pingAck;

    private Http2ClientConnection(Socket socket, Stream stream, bool plain, Http2ClientSettings settings)
    {
        _socket = socket;
        _stream = stream;
        _plain = plain;
        _settings = settings;
    }

    /// <summary>True while new streams may be opened on this connection.</summary>
    public bool IsUsable
    {
        get
        {
            lock (_sync)
            {
                return _failure is null && !_goAway && _nextStreamId < int.MaxValue - 2;
            }
        }
    }

    /// <summary>Opens a connection to <paramref name="host"/>:<paramref name="port"/> and exchanges SETTINGS.</summary>
    public static async Task<Http2ClientConnection> ConnectAsync(string host, int port, Http2ClientSettings settings, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(settings.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: false);
            if (settings.Tls is { } tls)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                var options = new SslClientAuthenticationOptions
                {
                    TargetHost = tls.TargetHost ?? host,
                    RemoteCertificateValidationCallback = tls.RemoteCertificateValidationCallback,
                    ClientCertificates = tls.ClientCertificates,
                    EnabledSslProtocols = tls.EnabledSslProtocols,
                    ApplicationProtocols = [SslApplicationProtocol.Http2],
                };
                await ssl.AuthenticateAsClientAsync(options, timeout.Token).ConfigureAwait(false);
                if (ssl.NegotiatedApplicationProtocol != SslApplicationProtocol.Http2)
                {
                    throw new IOException("The server did not agree to HTTP/2 during the TLS handshake (ALPN).");
                }
            }

            var connection = new Http2ClientConnection(socket, stream, settings.Tls is null, settings);
            await connection.StartAsync(timeout.Token).ConfigureAwait(false);
            return connection;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Close(socket, stream);
            throw new IOException($"Connecting to {host}:{port} took longer than {settings.ConnectTimeout.TotalSeconds:0.#} s.");
        }
        catch
        {
            Close(socket, stream);
            throw;
        }
    }

    private static void Close(Socket socket, Stream? stream)
    {
        stream?.Dispose();
        socket.Dispose();
    }

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        // Preface, our SETTINGS (no push, large stream window and frames) and the connection window opened wide.
        var frames = new byte[Preface.Length + FrameHeaderSize + 18 + FrameHeaderSize + 4];
        Preface.CopyTo(frames, 0);
        var p = Preface.Length;
        WriteHeader(frames.AsSpan(p), 18, Settings, 0, 0);
        p += FrameHeaderSize;
        p += WriteSetting(frames.AsSpan(p), 2, 0);
        p += WriteSetting(frames.AsSpan(p), 4, (uint)_settings.ReceiveWindow);
        p += WriteSetting(frames.AsSpan(p), 5, (uint)_settings.MaxFrameSize);
        WriteHeader(frames.AsSpan(p), 4, WindowUpdate, 0, 0);
        BinaryPrimitives.WriteUInt32BigEndian(frames.AsSpan(p + FrameHeaderSize), (uint)(_settings.ReceiveWindow - DefaultWindow));
        await _stream.WriteAsync(frames, cancellationToken).ConfigureAwait(false);
        await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        _lastHeard = Environment.TickCount64;
        _readLoop = Task.Run(ReadLoopAsync, CancellationToken.None);
        await _settingsReceived.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (_settings.KeepAlivePingDelay != Timeout.InfiniteTimeSpan)
        {
            _pingLoop = Task.Run(PingLoopAsync, CancellationToken.None);
        }
    }

    private static int WriteSetting(Span<byte> destination, ushort id, uint value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, id);
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], value);
        return 6;
    }

    internal static void WriteHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }

    /// <summary>Opens a stream and sends its request headers.</summary>
    public async Task<Http2ClientStream> OpenStreamAsync(IReadOnlyList<HeaderField> headers, bool endStream, CancellationToken cancellationToken)
    {
        var block = new List<byte>(256);
        foreach (var (name, value) in headers)
        {
            HpackEncoder.Write(block, name, value);
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        Http2ClientStream stream;
        try
        {
            lock (_sync)
            {
                ThrowIfUnusable();
                if (_streams.Count >= _peerMaxStreams)
                {
                    throw new IOException($"The server allows at most {_peerMaxStreams} concurrent streams.");
                }

                stream = new Http2ClientStream(this, _nextStreamId, _peerInitialWindow, _settings.ReceiveWindow);
                _nextStreamId += 2;
                _streams.Add(stream.Id, stream);
            }

            // Stream ids must appear on the wire in increasing order, so the id is taken under the write lock.
            var payload = block.ToArray();
            var frames = new byte[payload.Length + FrameHeaderSize * (1 + payload.Length / _peerMaxFrameSize)];
            var written = 0;
            var offset = 0;
            do
            {
                var n = Math.Min(payload.Length - offset, _peerMaxFrameSize);
                var last = offset + n == payload.Length;
                var flags = (byte)((last ? EndHeaders : 0) | (offset == 0 && endStream ? EndStream : 0));
                WriteHeader(frames.AsSpan(written), n, offset == 0 ? Headers : Continuation, flags, stream.Id);
                payload.AsSpan(offset, n).CopyTo(frames.AsSpan(written + FrameHeaderSize));
                written += FrameHeaderSize + n;
                offset += n;
            }
            while (offset < payload.Length);
            await WriteRawAsync(frames.AsMemory(0, written), default, default).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }

        return stream;
    }

    /// <summary>
    /// Sends <paramref name="a"/> then <paramref name="b"/> as DATA on <paramref name="stream"/>, waiting for flow-control
    /// credit as needed; <paramref name="endStream"/> marks the last frame. Frames are as large as the server allows.
    /// </summary>
    internal async ValueTask SendDataAsync(Http2ClientStream stream, ReadOnlyMemory<byte> a, ReadOnlyMemory<byte> b, bool endStream, CancellationToken cancellationToken)
    {
        var total = a.Length + b.Length;
        var sent = 0;
        do
        {
            var credit = total == 0 ? 0 : await TakeCreditAsync(stream, total - sent, cancellationToken).ConfigureAwait(false);
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                lock (_sync)
                {
                    ThrowIfUnusable(newStream: false);
                }

                stream.ThrowIfSendClosed();
                var last = sent + credit == total;
                WriteHeader(_dataHeader, credit, Data, (byte)(last && endStream ? EndStream : 0), stream.Id);
                // The part of a and b that falls in [sent, sent + credit).
                var first = Slice(a, sent, credit);
                var second = Slice(b, sent - a.Length, credit - first.Length);
                await WriteRawAsync(_dataHeader, first, second).ConfigureAwait(false);
                if (last && endStream)
                {
                    stream.MarkSendClosed();
                }
            }
            finally
            {
                _writeLock.Release();
            }

            sent += credit;
        }
        while (sent < total);
    }

    private static ReadOnlyMemory<byte> Slice(ReadOnlyMemory<byte> m, int start, int count)
    {
        start = Math.Max(0, start);
        return start >= m.Length || count <= 0 ? ReadOnlyMemory<byte>.Empty : m.Slice(start, Math.Min(count, m.Length - start));
    }

    private async ValueTask<int> TakeCreditAsync(Http2ClientStream stream, int wanted, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_sync)
            {
                ThrowIfUnusable(newStream: false);
                stream.ThrowIfSendClosed();
                var credit = (int)Math.Min(Math.Min(wanted, _peerMaxFrameSize), Math.Min(_sendWindow, stream.SendWindow));
                if (credit > 0)
                {
                    _sendWindow -= credit;
                    stream.SendWindow -= credit;
                    return credit;
                }

                _windowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _windowWaiter.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes up to three pieces as one gathered send (cleartext) or in order (TLS). Caller holds the write lock.</summary>
    private async ValueTask WriteRawAsync(ReadOnlyMemory<byte> a, ReadOnlyMemory<byte> b, ReadOnlyMemory<byte> c)
    {
        try
        {
            // The caller holds the write lock, so the segment list is reused.
            _segments.Clear();
            if (_plain && AddSegment(a) && AddSegment(b) && AddSegment(c))
            {
                var total = a.Length + b.Length + c.Length;
                var done = await _socket.SendAsync(_segments, SocketFlags.None).ConfigureAwait(false);
                // A short send (the kernel buffer filled up) continues from where it stopped.
                while (done < total)
                {
                    done += await _socket.SendAsync(Skip(_segments, done), SocketFlags.None).ConfigureAwait(false);
                }

                return;
            }

            await _stream.WriteAsync(a).ConfigureAwait(false);
            if (!b.IsEmpty)
            {
                await _stream.WriteAsync(b).ConfigureAwait(false);
            }

            if (!c.IsEmpty)
            {
                await _stream.WriteAsync(c).ConfigureAwait(false);
            }

            await _stream.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Fail(new IOException($"Writing to the server failed: {ex.Message}", ex));
            throw new IOException($"Writing to the server failed: {ex.Message}", ex);
        }
    }

    /// <summary>Adds an array-backed piece to the gathered send; false when one is not (then the stream is written).</summary>
    private bool AddSegment(ReadOnlyMemory<byte> m)
    {
        if (m.IsEmpty)
        {
            return true;
        }

        if (!System.Runtime.InteropServices.MemoryMarshal.TryGetArray(m, out var segment))
        {
            return false;
        }

        _segments.Add(segment);
        return true;
    }

    private static List<ArraySegment<byte>> Skip(List<ArraySegment<byte>> segments, int count)
    {
        var rest = new List<ArraySegment<byte>>(segments.Count);
        foreach (var s in segments)
        {
            if (count >= s.Count)
            {
                count -= s.Count;
                continue;
            }

            rest.Add(s.Slice(count));
            count = 0;
        }

        return rest;
    }

    /// <summary>Sends a small control frame (RST_STREAM, WINDOW_UPDATE, SETTINGS ack, PING); errors only fail the connection.</summary>
    internal async Task SendControlAsync(byte type, byte flags, int streamId, ReadOnlyMemory<byte> payload)
    {
        var frame = new byte[FrameHeaderSize + payload.Length];
        WriteHeader(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame.AsMemory(FrameHeaderSize));
        try
        {
            await _writeLock.WaitAsync(_closing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            await WriteRawAsync(frame, default, default).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // Already recorded as the connection's failure.
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Called as the application consumes received bytes: returns window to the server in large steps.</summary>
    internal void Consumed(Http2ClientStream stream, int count)
    {
        var streamUpdate = stream.AddConsumed(count);
        int connectionUpdate = 0;
        lock (_sync)
        {
            _unackedReceive += count;
            if (_unackedReceive >= _settings.ReceiveWindow / 4)
            {
                connectionUpdate = _unackedReceive;
                _unackedReceive = 0;
            }
        }

        if (connectionUpdate > 0)
        {
            _ = SendWindowUpdateAsync(0, connectionUpdate);
        }

        if (streamUpdate > 0)
        {
            _ = SendWindowUpdateAsync(stream.Id, streamUpdate);
        }
    }

    private Task SendWindowUpdateAsync(int streamId, int increment)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, increment);
        return SendControlAsync(WindowUpdate, 0, streamId, payload);
    }

    internal void Reset(Http2ClientStream stream, int errorCode)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, errorCode);
        _ = SendControlAsync(RstStream, 0, stream.Id, payload);
        Remove(stream);
    }

    internal void Remove(Http2ClientStream stream)
    {
        lock (_sync)
        {
            _streams.Remove(stream.Id);
        }
    }

    private void ThrowIfUnusable(bool newStream = true)
    {
        if (_failure is { } failure)
        {
            throw new IOException(failure.Message, failure);
        }

        if (newStream && _goAway)
        {
            throw new IOException("The server is closing this connection (GOAWAY).");
        }
    }

    private async Task ReadLoopAsync()
    {
        var header = new byte[FrameHeaderSize];
        var block = new List<byte>();
        try
        {
            while (true)
            {
                if (!await FillAsync(header, allowEnd: true).ConfigureAwait(false))
                {
                    throw new IOException("The server closed the connection.");
                }

                Volatile.Write(ref _lastHeard, Environment.TickCount64);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var type = header[3];
                var flags = header[4];
                var streamId = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue;
                if (length > _settings.MaxFrameSize)
                {
                    throw new Http2ProtocolException(FrameSizeError, $"The server sent a {length}-byte frame; the limit is {_settings.MaxFrameSize}.");
                }

                if (type == Data)
                {
                    await ReadDataAsync(length, flags, streamId).ConfigureAwait(false);
                    continue;
                }

                var payload = new byte[length];
                await FillAsync(payload, allowEnd: false).ConfigureAwait(false);
                switch (type)
                {
                    case Headers:
                        await ReadHeadersAsync(payload, flags, streamId, block).ConfigureAwait(false);
                        break;
                    case RstStream:
                        if (length != 4 || streamId == 0)
                        {
                            throw new Http2ProtocolException(FrameSizeError, "Malformed RST_STREAM.");
                        }

                        Find(streamId)?.OnReset(BinaryPrimitives.ReadInt32BigEndian(payload));
                        lock (_sync)
                        {
                            // A writer waiting for send credit on the reset stream wakes to find it closed.
                            WakeWindowWaiters();
                        }

                        break;
                    case Settings:
                        OnSettings(payload, flags, streamId);
                        break;
                    case Ping:
                        if (length != 8 || streamId != 0)
                        {
                            throw new Http2ProtocolException(FrameSizeError, "Malformed PING.");
                        }

                        if ((flags & Ack) == 0)
                        {
                            _ = SendControlAsync(Ping, Ack, 0, payload);
                        }
                        else if (BinaryPrimitives.ReadInt64BigEndian(payload) == Interlocked.Read(ref _pingPayload))
                        {
                            Interlocked.Exchange(ref _pingAck, null)?.TrySetResult();
                        }

                        break;
                    case GoAway:
                        OnGoAway(payload);
                        break;
                    case WindowUpdate:
                        OnWindowUpdate(payload, streamId);
                        break;
                    case PushPromise:
                        throw new Http2ProtocolException(ProtocolError, "PUSH_PROMISE received although push is disabled.");
                    case Continuation:
                        throw new Http2ProtocolException(ProtocolError, "CONTINUATION without a HEADERS frame.");
                    default:
                        // PRIORITY and unknown frame types are ignored.
                        break;
                }
            }
        }
        catch (Exception ex)
        {
            if (ex is Http2ProtocolException p)
            {
                var goAway = new byte[8];
                BinaryPrimitives.WriteInt32BigEndian(goAway, 0);
                BinaryPrimitives.WriteInt32BigEndian(goAway.AsSpan(4), p.ErrorCode);
                await SendControlAsync(GoAway, 0, 0, goAway).ConfigureAwait(false);
            }

            Fail(ex is OperationCanceledException ? new IOException("The connection was closed.") : ex);
        }
    }

    private async Task ReadDataAsync(int length, byte flags, int streamId)
    {
        if (streamId == 0)
        {
            throw new Http2ProtocolException(ProtocolError, "DATA on stream 0.");
        }

        var pad = 0;
        var body = length;
        if ((flags & Padded) != 0)
        {
            var padLength = new byte[1];
            await FillAsync(padLength, allowEnd: false).ConfigureAwait(false);
            pad = padLength[0];
            body = length - 1 - pad;
            if (body < 0)
            {
                throw new Http2ProtocolException(ProtocolError, "DATA padding longer than the frame.");
            }
        }

        var stream = Find(streamId);
        if (stream is null || !stream.CanReceiveData)
        {
            // A stream we reset or finished: the bytes still count against the connection window.
            await SkipAsync(body + pad).ConfigureAwait(false);
            if (length > 0)
            {
                _ = SendWindowUpdateAsync(0, length);
            }

            if (stream is not null && streamId < _nextStreamId)
            {
                stream.OnProtocolError("DATA after the response ended.");
            }

            return;
        }

        if (!stream.TryReserveReceive(length))
        {
            throw new Http2ProtocolException(FlowControlError, "The server sent more than the stream window allows.");
        }

        // Padding counts toward flow control; give it back at once.
        var target = stream.ReceiveBuffer(body);
        await FillAsync(target, allowEnd: false).ConfigureAwait(false);
        await SkipAsync(pad).ConfigureAwait(false);
        stream.OnData(body, (flags & EndStream) != 0);
        if (length - body > 0)
        {
            Consumed(stream, length - body);
        }
    }

    private async Task ReadHeadersAsync(byte[] payload, byte flags, int streamId, List<byte> block)
    {
        if (streamId == 0)
        {
            throw new Http2ProtocolException(ProtocolError, "HEADERS on stream 0.");
        }

        var start = 0;
        var end = payload.Length;
        if ((flags & Padded) != 0)
        {
            if (payload.Length < 1 || payload[0] >= payload.Length)
            {
                throw new Http2ProtocolException(ProtocolError, "HEADERS padding longer than the frame.");
            }

            end -= payload[0];
            start = 1;
        }

        if ((flags & PriorityFlag) != 0)
        {
            start += 5;
        }

        if (start > end)
        {
            throw new Http2ProtocolException(FrameSizeError, "HEADERS frame too short.");
        }

        block.Clear();
        block.AddRange(payload.AsSpan(start, end - start));
        var endHeaders = (flags & EndHeaders) != 0;
        var header = new byte[FrameHeaderSize];
        while (!endHeaders)
        {
            await FillAsync(header, allowEnd: false).ConfigureAwait(false);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            if (header[3] != Continuation || (BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue) != streamId)
            {
                throw new Http2ProtocolException(ProtocolError, "A header block was interrupted by another frame.");
            }

            if (length > _settings.MaxFrameSize || block.Count + length > 1024 * 1024)
            {
                throw new Http2ProtocolException(FrameSizeError, "Header block too large.");
            }

            var more = new byte[length];
            await FillAsync(more, allowEnd: false).ConfigureAwait(false);
            block.AddRange(more);
            endHeaders = (header[4] & EndHeaders) != 0;
        }

        var fields = new List<HeaderField>();
        try
        {
            // Every block is decoded, even for streams we no longer track, to keep the HPACK table in step.
            _decoder.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(block), fields);
        }
        catch (HpackException ex)
        {
            throw new Http2ProtocolException(CompressionError, $"Malformed header block: {ex.Message}");
        }

        Find(streamId)?.OnHeaders(fields, (flags & EndStream) != 0);
    }

    private void OnSettings(byte[] payload, byte flags, int streamId)
    {
        if (streamId != 0 || payload.Length % 6 != 0 || ((flags & Ack) != 0 && payload.Length != 0))
        {
            throw new Http2ProtocolException(FrameSizeError, "Malformed SETTINGS.");
        }

        if ((flags & Ack) != 0)
        {
            return;
        }

        for (var i = 0; i < payload.Length; i += 6)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(i));
            var value = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(i + 2));
            switch (id)
            {
                case 3:
                    lock (_sync)
                    {
                        _peerMaxStreams = (int)Math.Min(value, int.MaxValue);
                    }

                    break;
                case 4:
                    if (value > int.MaxValue)
                    {
                        throw new Http2ProtocolException(FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1.");
                    }

                    lock (_sync)
                    {
                        // The change applies to every open stream's send window (RFC 9113 section 6.9.2).
                        var delta = (int)value - _peerInitialWindow;
                        _peerInitialWindow = (int)value;
                        foreach (var s in _streams.Values)
                        {
                            s.SendWindow += delta;
                        }

                        WakeWindowWaiters();
                    }

                    break;
                case 5:
                    if (value < 16384 || value > 16777215)
                    {
                        throw new Http2ProtocolException(ProtocolError, $"SETTINGS_MAX_FRAME_SIZE {value} out of range.");
                    }

                    lock (_sync)
                    {
                        _peerMaxFrameSize = (int)value;
                    }

                    break;
            }
        }

        _ = SendControlAsync(Settings, Ack, 0, ReadOnlyMemory<byte>.Empty);
        _settingsReceived.TrySetResult();
    }

    private void OnWindowUpdate(byte[] payload, int streamId)
    {
        if (payload.Length != 4)
        {
            throw new Http2ProtocolException(FrameSizeError, "Malformed WINDOW_UPDATE.");
        }

        var increment = BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
        lock (_sync)
        {
            if (streamId == 0)
            {
                if (increment == 0 || _sendWindow + increment > int.MaxValue)
                {
                    throw new Http2ProtocolException(FlowControlError, "Invalid connection WINDOW_UPDATE.");
                }

                _sendWindow += increment;
            }
            else if (_streams.TryGetValue(streamId, out var stream))
            {
                if (increment == 0 || (long)stream.SendWindow + increment > int.MaxValue)
                {
                    stream.OnProtocolError("Invalid stream WINDOW_UPDATE.");
                }
                else
                {
                    stream.SendWindow += increment;
                }
            }

            WakeWindowWaiters();
        }
    }

    private void WakeWindowWaiters()
    {
        var waiter = _windowWaiter;
        _windowWaiter = null;
        waiter?.TrySetResult();
    }

    private void OnGoAway(byte[] payload)
    {
        if (payload.Length < 8)
        {
            throw new Http2ProtocolException(FrameSizeError, "Malformed GOAWAY.");
        }

        var lastStream = BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
        var code = BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(4));
        List<Http2ClientStream> refused;
        lock (_sync)
        {
            _goAway = true;
            refused = [.. _streams.Values.Where(s => s.Id > lastStream)];
        }

        foreach (var s in refused)
        {
            s.OnConnectionFailed(new IOException($"The server is closing the connection (GOAWAY, error {code}) before this call began."));
        }
    }

    private Http2ClientStream? Find(int streamId)
    {
        lock (_sync)
        {
            return _streams.GetValueOrDefault(streamId);
        }
    }

    private void Fail(Exception ex)
    {
        List<Http2ClientStream> streams;
        lock (_sync)
        {
            _failure ??= ex;
            streams = [.. _streams.Values];
            _streams.Clear();
            WakeWindowWaiters();
        }

        _settingsReceived.TrySetException(ex);
        Interlocked.Exchange(ref _pingAck, null)?.TrySetException(ex);
        foreach (var s in streams)
        {
            s.OnConnectionFailed(ex);
        }

        _closing.Cancel();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PingLoopAsync()
    {
        try
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Max(100, _settings.KeepAlivePingDelay.TotalMilliseconds / 4)));
            while (await timer.WaitForNextTickAsync(_closing.Token).ConfigureAwait(false))
            {
                bool active;
                lock (_sync)
                {
                    active = _streams.Count > 0;
                }

                if (!active || Environment.TickCount64 - Volatile.Read(ref _lastHeard) < _settings.KeepAlivePingDelay.TotalMilliseconds)
                {
                    continue;
                }

                var ack = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var payload = new byte[8];
                var value = Interlocked.Increment(ref _pingPayload);
                BinaryPrimitives.WriteInt64BigEndian(payload, value);
                Volatile.Write(ref _pingAck, ack);
                await SendControlAsync(Ping, 0, 0, payload).ConfigureAwait(false);
                try
                {
                    await ack.Task.WaitAsync(_settings.KeepAlivePingTimeout, _closing.Token).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    Fail(new IOException($"The server did not answer a keep-alive ping within {_settings.KeepAlivePingTimeout.TotalSeconds:0} s."));
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
        }
    }

    /// <summary>Fills <paramref name="destination"/> from the read buffer, then the socket; false on a clean end before any byte.</summary>
    private async ValueTask<bool> FillAsync(Memory<byte> destination, bool allowEnd)
    {
        var got = 0;
        var buffered = Math.Min(_readEnd - _readStart, destination.Length);
        if (buffered > 0)
        {
            _readBuffer.AsMemory(_readStart, buffered).CopyTo(destination);
            _readStart += buffered;
            got = buffered;
        }

        while (got < destination.Length)
        {
            var remaining = destination.Length - got;
            if (remaining >= _readBuffer.Length / 2)
            {
                // Large payloads go straight to their destination.
                var n = await _stream.ReadAsync(destination[got..], _closing.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return got == 0 && allowEnd ? false : throw new IOException("The server closed the connection in the middle of a frame.");
                }

                got += n;
                continue;
            }

            _readStart = 0;
            _readEnd = await _stream.ReadAsync(_readBuffer, _closing.Token).ConfigureAwait(false);
            if (_readEnd == 0)
            {
                return got == 0 && allowEnd ? false : throw new IOException("The server closed the connection in the middle of a frame.");
            }

            var take = Math.Min(_readEnd, remaining);
            _readBuffer.AsMemory(0, take).CopyTo(destination[got..]);
            _readStart = take;
            got += take;
        }

        return true;
    }

    private async ValueTask SkipAsync(int count)
    {
        var scratch = new byte[Math.Min(count, 64 * 1024)];
        while (count > 0)
        {
            var n = Math.Min(count, scratch.Length);
            await FillAsync(scratch.AsMemory(0, n), allowEnd: false).ConfigureAwait(false);
            count -= n;
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        var goAway = new byte[8];
        if (IsUsable)
        {
            await SendControlAsync(GoAway, 0, 0, goAway).ConfigureAwait(false);
        }

        Fail(new ObjectDisposedException(nameof(Http2ClientConnection), "The connection was closed by this client."));
        try
        {
            await Task.WhenAll(_readLoop, _pingLoop).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or IOException)
        {
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }
}

/// <summary>A connection-level protocol violation by the server: the connection ends with GOAWAY and this code.</summary>
internal sealed class Http2ProtocolException(int errorCode, string message) : IOException(message)
{
    public int ErrorCode { get; } = errorCode;
}
