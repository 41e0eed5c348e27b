namespace Cluster.Contracts.Grpc.Http2;

/// <summary>
/// One request/response exchange on an <see cref="Http2ClientConnection"/>. The request body is sent with
/// <see cref="WriteAsync"/> and ended with <see cref="CompleteWritesAsync"/>; the response's headers, body and trailers
/// are read as they arrive. Received bytes wait in a buffer the connection's reader fills directly.
/// </summary>
public sealed class Http2ClientStream
{
    private readonly Http2ClientConnection _connection;
    private readonly Lock _sync = new();
    private readonly int _windowStep;
    private readonly int _inPlaceLimit;
    private readonly TaskCompletionSource<IReadOnlyList<HeaderField>> _headers = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _buffer = [];
    private int _start;
    private int _end;
    private int _reserved;
    private int _lent;
    private int _receiveWindow;
    private int _consumed;
    private bool _endOfData;
    private bool _sendClosed;
    private bool _removed;
    private Exception? _error;
    private TaskCompletionSource? _dataWaiter;
    private IReadOnlyList<HeaderField>? _trailers;

    internal Http2ClientStream(Http2ClientConnection connection, int id, int sendWindow, int receiveWindow)
    {
        _connection = connection;
        Id = id;
        SendWindow = sendWindow;
        _receiveWindow = receiveWindow;
        _windowStep = Math.Max(1, receiveWindow / 4);
        // A message this size always fits in what the window lets the server send before it is consumed.
        _inPlaceLimit = receiveWindow / 2;
    }

    /// <summary>The stream identifier.</summary>
    public int Id { get; }

    /// <summary>
    /// When true, a reader waiting for body bytes resumes on the connection's read loop as soon as they arrive, instead
    /// of being handed to the thread pool: one thread hop less per message. The read loop reads no further frames until
    /// that reader next awaits, so set it only for a reader that never blocks (its waits are awaits) and whose work
    /// between reads may delay the stream's other frames.
    /// </summary>
    public bool InlineReader { get; set; }

    /// <summary>Send credit left (guarded by the connection's lock).</summary>
    internal long SendWindow { get; set; }

    /// <summary>The response headers (the trailers too, for a trailers-only response).</summary>
    public Task<IReadOnlyList<HeaderField>> ResponseHeaders => _headers.Task;

    /// <summary>The trailers once the response has ended (null before, or when it ended without any).</summary>
    public IReadOnlyList<HeaderField>? Trailers
    {
        get
        {
            lock (_sync)
            {
                return _trailers;
            }
        }
    }

    /// <summary>Bytes received and not yet consumed (a lent message included).</summary>
    internal int BufferedBytes
    {
        get
        {
            lock (_sync)
            {
                return _end - _start;
            }
        }
    }

    internal bool CanReceiveData
    {
        get
        {
            lock (_sync)
            {
                return !_endOfData && _error is null && _headers.Task.IsCompleted;
            }
        }
    }

    /// <summary>Sends request body bytes (<paramref name="a"/> then <paramref name="b"/>); <paramref name="endStream"/> ends the request.</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> a, ReadOnlyMemory<byte> b, bool endStream, CancellationToken cancellationToken) =>
        a.IsEmpty && b.IsEmpty && !endStream ? ValueTask.CompletedTask : _connection.SendDataAsync(this, a, b, endStream, cancellationToken);

    /// <summary>Ends the request body (an empty DATA frame with END_STREAM) unless it already ended.</summary>
    public async ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        lock (_sync)
        {
            if (_sendClosed || _error is not null)
            {
                return;
            }
        }

        try
        {
            await _connection.SendDataAsync(this, default, default, endStream: true, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The stream or connection is already gone; the reader reports why.
        }
    }

    /// <summary>Reads response body bytes; 0 at the end of the body. A reset or broken connection throws <see cref="IOException"/>.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        ReleaseLent();
        while (true)
        {
            Task wait;
            var copied = 0;
            lock (_sync)
            {
                var available = _end - _start;
                if (available > 0)
                {
                    copied = Math.Min(available, destination.Length);
                    _buffer.AsSpan(_start, copied).CopyTo(destination.Span);
                    _start += copied;
                    if (_start == _end && _reserved == 0)
                    {
                        _start = _end = 0;
                    }

                    wait = Task.CompletedTask;
                }
                else if (_endOfData)
                {
                    return 0;
                }
                else if (_error is { } error)
                {
                    throw new IOException(error.Message, error);
                }
                else
                {
                    wait = DataArrival();
                }
            }

            if (copied > 0)
            {
                // Flow control learns of the bytes outside the lock: it may send a WINDOW_UPDATE.
                _connection.Consumed(this, copied);
                return copied;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Cancels the stream (RST_STREAM CANCEL) unless both directions already ended.</summary>
    public void Abort()
    {
        bool reset;
        lock (_sync)
        {
            if (_removed)
            {
                return;
            }

            _removed = true;
            reset = !(_endOfData && _sendClosed) && _error is null;
            _error ??= new OperationCanceledException("The call was cancelled by this client.");
            Wake();
        }

        if (reset)
        {
            _connection.Reset(this, Http2ClientConnection.Cancel);
        }
        else
        {
            _connection.Remove(this);
        }
    }

    internal void ThrowIfSendClosed()
    {
        lock (_sync)
        {
            if (_error is { } error)
            {
                throw new IOException(error.Message, error);
            }

            if (_sendClosed)
            {
                throw new IOException("The request stream has already ended.");
            }
        }
    }

    internal void MarkSendClosed()
    {
        lock (_sync)
        {
            _sendClosed = true;
        }

        RemoveIfDone();
    }

    internal bool TryReserveReceive(int length)
    {
        lock (_sync)
        {
            if (length > _receiveWindow)
            {
                return false;
            }

            _receiveWindow -= length;
            return true;
        }
    }

    /// <summary>
    /// Waits for the next gRPC message to lie whole in the receive buffer and lends its bytes (after the 5-byte prefix)
    /// without a copy, valid until the next read of this stream; they count as consumed (for flow control) at that read.
    /// Returns null, lending nothing, when the message cannot be lent: it is over half the receive window (it could
    /// stall the sender while it waited whole), or the body ended or broke first. The caller then reads it by copying
    /// (<see cref="FrameReader"/>), which also reports the end, a truncation or the broken stream.
    /// </summary>
    internal async ValueTask<ReadOnlyMemory<byte>?> LendMessageAsync(int maxMessageBytes, CancellationToken cancellationToken)
    {
        ReleaseLent();
        while (true)
        {
            Task wait;
            lock (_sync)
            {
                var available = _end - _start;
                if (available >= GrpcFraming.HeaderSize)
                {
                    var length = GrpcFraming.CheckHeader(_buffer.AsSpan(_start, GrpcFraming.HeaderSize), maxMessageBytes);
                    if (GrpcFraming.HeaderSize + length > _inPlaceLimit)
                    {
                        return null;
                    }

                    if (available - GrpcFraming.HeaderSize >= length)
                    {
                        _lent = GrpcFraming.HeaderSize + length;
                        return _buffer.AsMemory(_start + GrpcFraming.HeaderSize, length);
                    }
                }

                if (_endOfData || _error is not null)
                {
                    return null;
                }

                wait = DataArrival();
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Gives back the bytes of the message lent by <see cref="LendMessageAsync"/>: the reader is done with them.</summary>
    private void ReleaseLent()
    {
        int n;
        lock (_sync)
        {
            n = _lent;
            if (n == 0)
            {
                return;
            }

            _lent = 0;
            _start += n;
            if (_start == _end && _reserved == 0)
            {
                _start = _end = 0;
            }
        }

        _connection.Consumed(this, n);
    }

    /// <summary>Room for <paramref name="count"/> bytes after the buffered ones, for the reader to fill; only the reader moves or grows the buffer.</summary>
    internal Memory<byte> ReceiveBuffer(int count)
    {
        lock (_sync)
        {
            if (_buffer.Length - _end < count)
            {
                var live = _end - _start;
                // Bytes lent to the reader stay where they are: the live ones move to a new array instead.
                var target = _lent == 0 && _buffer.Length >= live + count ? _buffer : new byte[Math.Max(live + count, _buffer.Length * 2)];
                _buffer.AsSpan(_start, live).CopyTo(target);
                _buffer = target;
                _start = 0;
                _end = live;
            }

            _reserved = count;
            return _buffer.AsMemory(_end, count);
        }
    }

    internal void OnData(int count, bool endStream)
    {
        TaskCompletionSource? waiter;
        lock (_sync)
        {
            _end += count;
            _reserved = 0;
            if (endStream)
            {
                _endOfData = true;
            }

            waiter = _dataWaiter;
            _dataWaiter = null;
        }

        // Outside the lock: an inline reader runs its continuation right here.
        waiter?.TrySetResult();

        if (endStream)
        {
            RemoveIfDone();
        }
    }

    internal int AddConsumed(int count)
    {
        lock (_sync)
        {
            _consumed += count;
            if (_consumed < _windowStep || _endOfData || _error is not null)
            {
                return 0;
            }

            var update = _consumed;
            _consumed = 0;
            _receiveWindow += update;
            return update;
        }
    }

    internal void OnHeaders(List<HeaderField> fields, bool endStream)
    {
        if (!_headers.Task.IsCompleted)
        {
            var status = fields.FirstOrDefault(f => f.Name == ":status").Value;
            if (status is { Length: 3 } && status[0] == '1' && !endStream)
            {
                return; // An informational response; the real one follows.
            }

            if (endStream)
            {
                lock (_sync)
                {
                    _trailers = fields;
                    _endOfData = true;
                    Wake();
                }
            }

            _headers.TrySetResult(fields);
        }
        else if (endStream)
        {
            lock (_sync)
            {
                _trailers = fields;
                _endOfData = true;
                Wake();
            }
        }
        else
        {
            OnProtocolError("Trailers without END_STREAM.");
            return;
        }

        if (endStream)
        {
            RemoveIfDone();
        }
    }

    internal void OnReset(int errorCode)
    {
        lock (_sync)
        {
            _sendClosed = true;
            // NO_ERROR after a complete response only tells us to stop sending.
            if (!(errorCode == 0 && _endOfData))
            {
                _error ??= new IOException($"The server reset the stream (HTTP/2 error {errorCode}).");
            }

            Wake();
        }

        _headers.TrySetException(new IOException($"The server reset the stream (HTTP/2 error {errorCode})."));
        _connection.Remove(this);
    }

    internal void OnConnectionFailed(Exception ex)
    {
        lock (_sync)
        {
            if (!_endOfData)
            {
                _error ??= ex;
            }

            _sendClosed = true;
            Wake();
        }

        _headers.TrySetException(new IOException(ex.Message, ex));
    }

    internal void OnProtocolError(string message)
    {
        lock (_sync)
        {
            _error ??= new IOException($"The server broke the protocol on this stream: {message}");
            Wake();
        }

        _headers.TrySetException(new IOException(message));
        _connection.Reset(this, Http2ClientConnection.ProtocolError);
    }

    /// <summary>
    /// What a reader awaits for more body bytes (under the lock). An inline reader's continuation runs where the bytes
    /// are delivered, any other's on the thread pool.
    /// </summary>
    private Task DataArrival()
    {
        _dataWaiter ??= new TaskCompletionSource(InlineReader ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously);
        return _dataWaiter.Task;
    }

    /// <summary>Wakes the reader from under the lock: an inline reader is handed to the thread pool here, so it never runs holding the lock.</summary>
    private void Wake()
    {
        var waiter = _dataWaiter;
        _dataWaiter = null;
        if (waiter is null)
        {
            return;
        }

        if (InlineReader)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static w => w.TrySetResult(), waiter, preferLocal: false);
        }
        else
        {
            waiter.TrySetResult();
        }
    }

    private void RemoveIfDone()
    {
        lock (_sync)
        {
            if (!(_endOfData && _sendClosed) || _removed)
            {
                return;
            }

            _removed = true;
        }

        _connection.Remove(this);
    }
}
