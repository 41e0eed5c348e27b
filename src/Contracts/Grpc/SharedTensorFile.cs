using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Cluster.Contracts.Grpc;

/// <summary>
/// A shared-memory file through which the coordinator and a worker process on the same machine exchange a step's
/// tensors, instead of sending their bytes over the Join stream: the step plan and the gradient message still go over
/// the stream, marked weights_shared and gradient_shared, so the stream stays the one channel of control. One file per
/// Join stream, in /dev/shm (memory, not disk), readable and writable by the coordinator's user only. Its name is removed
/// as soon as the worker has mapped it, or when the worker answers without it (the mappings outlive the name).
/// <para>
/// Layout: a 64-byte header (magic, the admission's random nonce, the parameter count, the step whose weights the file
/// holds, the step whose weights are being written, the step of the gradient, the creating process and its PID
/// namespace), then the weights and the gradient as float32, each starting on a 64-byte line.
/// </para>
/// <para>
/// A coordinator killed between creating a file and its worker mapping it leaves the name behind; the next coordinator
/// on the machine removes such files when it starts (<see cref="RemoveOrphans"/>).
/// </para>
/// </summary>
public sealed unsafe class SharedTensorFile : IDisposable
{
    /// <summary>Where the files live: the machine's shared-memory file system.</summary>
    public const string Folder = "/dev/shm";

    /// <summary>Start of every file name; a worker opens no other file.</summary>
    public const string Prefix = "cluster-tensors-";

    /// <summary>Bytes of the random nonce that ties a file to one admission.</summary>
    public const int NonceBytes = 16;

    private const ulong Magic = 0x3230764D48534C43; // "CLSHMv02"
    private const int HeaderBytes = 64;
    private const int NonceAt = 8;
    private const int CountAt = 24;
    private const int WeightsStepAt = 32;
    private const int WritingStepAt = 40;
    private const int GradientStepAt = 48;
    private const int CreatorAt = 56;
    private const int CreatorNamespaceAt = 60;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _gradientAt;
    private readonly long _viewOffset;
    private readonly byte[] _nonce;
    private int _unlinked;

    private SharedTensorFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, int parameterCount, byte[] nonce)
    {
        FilePath = path;
        _map = map;
        _view = view;
        ParameterCount = parameterCount;
        _nonce = nonce;
        _gradientAt = HeaderBytes + AlignedBytes(parameterCount);
        _viewOffset = view.PointerOffset;
    }

    /// <summary>True where the machine has a shared-memory file system (Linux).</summary>
    public static bool Supported => OperatingSystem.IsLinux() && Directory.Exists(Folder);

    /// <summary>The file's path (given to the worker in its admission).</summary>
    public string FilePath { get; }

    /// <summary>The admission's nonce, also in the file's header.</summary>
    public ReadOnlySpan<byte> Nonce => _nonce;

    /// <summary>Floats in each of the two tensors.</summary>
    public int ParameterCount { get; }

    /// <summary>Bytes of a file for <paramref name="parameterCount"/> parameters.</summary>
    public static long SizeFor(int parameterCount) => HeaderBytes + (2 * AlignedBytes(parameterCount));

    /// <summary>
    /// Creates a file for one worker stream (the coordinator's side), its memory reserved up front: a full /dev/shm
    /// throws <see cref="IOException"/> here rather than a fault on a later write.
    /// </summary>
    public static SharedTensorFile Create(int parameterCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        if (!OperatingSystem.IsLinux() || !Directory.Exists(Folder))
        {
            throw new IOException($"This machine has no {Folder}.");
        }

        var path = Path.Combine(Folder, Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)));
        var size = SizeFor(parameterCount);
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            PreallocationSize = size,
        });
        try
        {
            stream.SetLength(size);
            var file = Map(path, stream, parameterCount, RandomNumberGenerator.GetBytes(NonceBytes));
            var p = file.Acquire();
            try
            {
                *(ulong*)p = Magic;
                file._nonce.CopyTo(new Span<byte>(p + NonceAt, NonceBytes));
                *(long*)(p + CountAt) = parameterCount;
                *(long*)(p + WeightsStepAt) = -1;
                *(long*)(p + WritingStepAt) = -1;
                *(long*)(p + GradientStepAt) = -1;
                *(int*)(p + CreatorAt) = Environment.ProcessId;
                *(uint*)(p + CreatorNamespaceAt) = PidNamespace.Value;
            }
            finally
            {
                file.Release();
            }

            return file;
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Opens the file an admission offered (the worker's side). Only a plain file directly in /dev/shm with the project's
    /// prefix, of the size the model needs, whose header holds the magic, <paramref name="nonce"/> and the parameter count,
    /// is mapped; anything else throws <see cref="IOException"/> before a byte is written, so an offer cannot make a
    /// worker write into any other file.
    /// </summary>
    public static SharedTensorFile Open(string path, ReadOnlySpan<byte> nonce, int parameterCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        if (!Supported || !IsProjectFile(path))
        {
            throw new IOException($"'{path}' is not a shared tensor file of this project.");
        }

        if (nonce.Length != NonceBytes)
        {
            throw new IOException($"The offer's nonce has {nonce.Length} bytes, not {NonceBytes}.");
        }

        var info = new FileInfo(path);
        var size = SizeFor(parameterCount);
        if (!info.Exists || info.LinkTarget is not null || info.Length != size)
        {
            throw new IOException($"'{path}' is missing here, a link, or not {size} bytes long (another machine or container?).");
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        SharedTensorFile? file = null;
        try
        {
            if (stream.Length != size)
            {
                throw new IOException($"'{path}' is not {size} bytes long.");
            }

            file = Map(path, stream, parameterCount, nonce.ToArray());
            var p = file.Acquire();
            try
            {
                if (*(ulong*)p != Magic || !new ReadOnlySpan<byte>(p + NonceAt, NonceBytes).SequenceEqual(nonce) || *(long*)(p + CountAt) != parameterCount)
                {
                    throw new IOException($"'{path}' does not carry this admission's header (magic, nonce, {parameterCount} parameters).");
                }
            }
            finally
            {
                file.Release();
            }

            return file;
        }
        catch
        {
            if (file is null)
            {
                stream.Dispose();
            }
            else
            {
                file.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Removes the files that coordinators on this machine left behind when they died between creating a file and its
    /// worker mapping it: files of this project's name, size and header whose creating process was in this process's PID
    /// namespace and is no longer running. A file of a running process, of another PID namespace (another container
    /// sharing /dev/shm), of another user, or anything else, is kept. Returns the paths removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveOrphans()
    {
        var removed = new List<string>();
        if (!Supported || PidNamespace.Value == 0)
        {
            return removed;
        }

        foreach (var path in Directory.EnumerateFiles(Folder, Prefix + "*"))
        {
            try
            {
                if (IsOrphan(path))
                {
                    File.Delete(path);
                    removed.Add(path);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not this user's: not ours to remove.
            }
        }

        return removed;
    }

    /// <summary>A path directly in /dev/shm named as <see cref="Create"/> names its files: the prefix and 24 hex digits.</summary>
    private static bool IsProjectFile(string path)
    {
        var name = Path.GetFileName(path);
        return Path.GetDirectoryName(path) == Folder && name.StartsWith(Prefix, StringComparison.Ordinal)
            && name.Length == Prefix.Length + 24 && !name.AsSpan(Prefix.Length).ContainsAnyExcept("0123456789abcdef");
    }

    private static bool IsOrphan(string path)
    {
        var info = new FileInfo(path);
        if (!IsProjectFile(path) || info.LinkTarget is not null || info.Length < HeaderBytes)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderBytes];
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            stream.ReadExactly(header);
        }

        var count = BinaryPrimitives.ReadInt64LittleEndian(header[CountAt..]);
        var creator = BinaryPrimitives.ReadInt32LittleEndian(header[CreatorAt..]);
        var space = BinaryPrimitives.ReadUInt32LittleEndian(header[CreatorNamespaceAt..]);
        return BinaryPrimitives.ReadUInt64LittleEndian(header) == Magic
            && count is > 0 and <= int.MaxValue && info.Length == SizeFor((int)count)
            && space == PidNamespace.Value && creator > 0 && creator != Environment.ProcessId
            && !Directory.Exists($"/proc/{creator}");
    }

    /// <summary>This process's PID namespace (the inode of /proc/self/ns/pid), 0 where it cannot be read.</summary>
    private static class PidNamespace
    {
        public static readonly uint Value = Read();

        private static uint Read()
        {
            try
            {
                // The link reads "pid:[4026531836]".
                var target = new FileInfo("/proc/self/ns/pid").LinkTarget;
                return target is not null && target.StartsWith("pid:[", StringComparison.Ordinal) && target.EndsWith(']')
                    && uint.TryParse(target.AsSpan(5, target.Length - 6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var inode)
                    ? inode
                    : 0;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return 0;
            }
        }
    }

    /// <summary>Writes the weights of <paramref name="step"/> (the coordinator), marked as being written until complete.</summary>
    public void WriteWeights(long step, ReadOnlySpan<float> weights)
    {
        CheckLength(weights.Length);
        var p = Acquire();
        try
        {
            Volatile.Write(ref *(long*)(p + WritingStepAt), step);
            Interlocked.MemoryBarrier();
            weights.CopyTo(new Span<float>(p + HeaderBytes, ParameterCount));
            Volatile.Write(ref *(long*)(p + WeightsStepAt), step);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Throws FAILED_PRECONDITION unless the file holds the whole weights of <paramref name="step"/>.</summary>
    public void CheckWeights(long step)
    {
        var p = Acquire();
        try
        {
            CheckWeights(p, step);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// The weights, in place, for the worker that computes on them without a copy. Valid until <see cref="Dispose"/>,
    /// which the owner must not call while it uses the span.
    /// </summary>
    public ReadOnlySpan<float> Weights => new(Base + HeaderBytes, ParameterCount);

    /// <summary>
    /// The gradient, in place, for the worker that computes into it (between <see cref="BeginGradient"/> and
    /// <see cref="MarkGradient"/>). Valid until <see cref="Dispose"/>, which the owner must not call while it uses the span.
    /// </summary>
    public Span<float> Gradient => new(Base + _gradientAt, ParameterCount);

    /// <summary>Marks the gradient as being written (no step), before a worker computes into <see cref="Gradient"/>.</summary>
    public void BeginGradient()
    {
        Volatile.Write(ref *(long*)(Base + GradientStepAt), -1);
        Interlocked.MemoryBarrier();
    }

    /// <summary>Marks the gradient in <see cref="Gradient"/> as complete for <paramref name="step"/>.</summary>
    public void MarkGradient(long step)
    {
        Interlocked.MemoryBarrier();
        Volatile.Write(ref *(long*)(Base + GradientStepAt), step);
    }

    /// <summary>Writes the gradient of <paramref name="step"/> (the worker), marked with its step once complete.</summary>
    public void WriteGradient(long step, ReadOnlySpan<float> gradient)
    {
        CheckLength(gradient.Length);
        var p = Acquire();
        try
        {
            Volatile.Write(ref *(long*)(p + GradientStepAt), -1);
            Interlocked.MemoryBarrier();
            gradient.CopyTo(new Span<float>(p + _gradientAt, ParameterCount));
            Volatile.Write(ref *(long*)(p + GradientStepAt), step);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Reads the gradient of <paramref name="step"/> into <paramref name="gradient"/> (the coordinator); a file whose
    /// gradient is marked with another step throws INVALID_ARGUMENT and copies nothing.
    /// </summary>
    public void ReadGradient(long step, Span<float> gradient)
    {
        CheckLength(gradient.Length);
        var p = Acquire();
        try
        {
            var marked = Volatile.Read(ref *(long*)(p + GradientStepAt));
            if (marked != step)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"The gradient of step {step} is said to be in shared memory, but the file holds step {marked}'s.");
            }

            new ReadOnlySpan<float>(p + _gradientAt, ParameterCount).CopyTo(gradient);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Removes the file's name (once); both sides' mappings stay valid until disposed.</summary>
    public void Unlink()
    {
        if (Interlocked.Exchange(ref _unlinked, 1) == 0)
        {
            try
            {
                File.Delete(FilePath);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>Unmaps the file (once no copy is under way) and, on the side that keeps it, nothing else.</summary>
    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }

    private byte* Base => (byte*)_view.SafeMemoryMappedViewHandle.DangerousGetHandle() + _viewOffset;

    private static void CheckWeights(byte* p, long step)
    {
        var held = Volatile.Read(ref *(long*)(p + WeightsStepAt));
        var writing = Volatile.Read(ref *(long*)(p + WritingStepAt));
        if (held != step || writing != step)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"The shared-memory file holds the weights of step {held} (writing {writing}), not of step {step}.");
        }
    }

    private static long AlignedBytes(int floats) => ((floats * (long)sizeof(float)) + 63) & ~63L;

    private static SharedTensorFile Map(string path, FileStream stream, int parameterCount, byte[] nonce)
    {
        var size = SizeFor(parameterCount);
        var map = MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        try
        {
            return new SharedTensorFile(path, map, map.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite), parameterCount, nonce);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private void CheckLength(int length)
    {
        if (length != ParameterCount)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"A tensor of {length} values; the shared-memory file holds {ParameterCount}.");
        }
    }

    /// <summary>The mapping's first byte, held against unmapping until <see cref="Release"/>: a Dispose on another thread waits for the copy.</summary>
    private byte* Acquire()
    {
        var added = false;
        try
        {
            _view.SafeMemoryMappedViewHandle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw new GrpcStatusException(GrpcStatusCode.Unavailable, "The shared-memory file was closed (the stream ended).");
        }

        return (byte*)_view.SafeMemoryMappedViewHandle.DangerousGetHandle() + _viewOffset;
    }

    private void Release() => _view.SafeMemoryMappedViewHandle.DangerousRelease();
}
