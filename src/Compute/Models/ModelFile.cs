using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Cluster.Compute.Models;

/// <summary>
/// The binary model file: magic "CLSTRMDL", format version, the architecture as JSON (no weights), the parameters as
/// little-endian float32, and a SHA-256 of everything before it. Files ending in .json are read and written as
/// <see cref="ModelJson"/> instead.
/// </summary>
public static class ModelFile
{
    /// <summary>Current binary format version.</summary>
    public const int Version = 1;

    private static ReadOnlySpan<byte> Magic => "CLSTRMDL"u8;

    /// <summary>Saves to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Save(Sequential model, string path)
    {
        var bytes = IsJson(path) ? Encoding.UTF8.GetBytes(ModelJson.Export(model)) : ToBytes(model);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Loads a binary or JSON model file.</summary>
    public static Sequential Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Model file not found: {path}", path);
        }

        var bytes = File.ReadAllBytes(path);
        try
        {
            return bytes.AsSpan().StartsWith(Magic) ? FromBytes(bytes) : ModelJson.Import(Encoding.UTF8.GetString(bytes));
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>The binary form of a model.</summary>
    public static byte[] ToBytes(Sequential model)
    {
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            ModelJson.Write(w, model, includeWeights: false);
        }

        var headerBytes = header.ToArray();
        var total = Magic.Length + 4 + 4 + headerBytes.Length + 4 + model.ParameterCount * 4 + 32;
        var bytes = new byte[total];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        var at = Magic.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 4)..], headerBytes.Length);
        at += 8;
        headerBytes.CopyTo(span[at..]);
        at += headerBytes.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], model.ParameterCount);
        at += 4;
        for (var i = 0; i < model.ParameterCount; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(span[(at + i * 4)..], model.Parameters[i]);
        }

        at += model.ParameterCount * 4;
        SHA256.HashData(span[..at], span[at..]);
        return bytes;
    }

    /// <summary>Reads the binary form, checking magic, version, lengths and checksum.</summary>
    public static Sequential FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Magic.Length + 8 + 4 + 32 || !bytes.StartsWith(Magic))
        {
            throw new InvalidDataException("Not a model file (bad magic or too short).");
        }

        var body = bytes[..^32];
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(body, digest);
        if (!digest.SequenceEqual(bytes[^32..]))
        {
            throw new InvalidDataException("The model file is corrupt: its SHA-256 checksum does not match its contents.");
        }

        var at = Magic.Length;
        var version = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
        if (version < 1 || version > Version)
        {
            throw new InvalidDataException($"Unsupported model file version {version}; this build reads 1..{Version}.");
        }

        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes[(at + 4)..]);
        at += 8;
        if (headerLength < 0 || at + headerLength + 4 > body.Length)
        {
            throw new InvalidDataException("The model file's header length is out of range.");
        }

        Sequential model;
        using (var doc = JsonDocument.Parse(bytes.Slice(at, headerLength).ToArray()))
        {
            model = ModelJson.Read(doc.RootElement, requireWeights: false);
        }

        at += headerLength;
        var count = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
        at += 4;
        if (count != model.ParameterCount || at + (long)count * 4 != body.Length)
        {
            throw new InvalidDataException($"The model file holds {count} parameters but its architecture has {model.ParameterCount}.");
        }

        for (var i = 0; i < count; i++)
        {
            model.Parameters[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(at + i * 4)..]);
        }

        return model;
    }

    private static bool IsJson(string path) => path.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
}
