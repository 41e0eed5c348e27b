using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cluster.Compute.Training;

/// <summary>
/// A run's complete state at a step boundary: parameters, optimizer state, position, running sums, early-stopping
/// state and history. The binary file is magic "CLSTRCKP", version, a JSON header, the float buffers, and a SHA-256
/// of everything before it. Randomness needs no state of its own: shuffles and dropout masks derive from the seed,
/// the epoch and the sample index.
/// </summary>
public sealed class Checkpoint
{
    /// <summary>Format version.</summary>
    public const int Version = 1;

    private static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = false,
    };

    private static ReadOnlySpan<byte> Magic => "CLSTRCKP"u8;

    /// <summary>Identifies the run (architecture, options, data size); a checkpoint only resumes the same run.</summary>
    public required string Fingerprint { get; init; }

    /// <summary>The position and bookkeeping.</summary>
    public required CheckpointHeader Header { get; init; }

    /// <summary>Model parameters.</summary>
    public required float[] Parameters { get; init; }

    /// <summary>Optimizer buffers (velocity, moments), each the size of the parameters.</summary>
    public required IReadOnlyList<float[]> OptimizerState { get; init; }

    /// <summary>Best parameters so far (early stopping), or null.</summary>
    public float[]? BestParameters { get; init; }

    /// <summary>The name <see cref="RunOf"/> gives the architecture, whose value (the model's JSON) is not worth printing.</summary>
    public const string Architecture = "the architecture (layers, activations, loss)";

    /// <summary>
    /// What identifies a run, field by field, named as the command line spells them: architecture JSON, training options
    /// and data shape. Epochs are not among them, so a run can be resumed to train for longer.
    /// </summary>
    public static Dictionary<string, string> RunOf(string modelJson, TrainingOptions options, int trainCount, int featureCount)
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        return new()
        {
            [Architecture] = modelJson,
            ["--batch-size"] = options.BatchSize.ToString(c),
            ["--lr"] = options.LearningRate.ToString("R", c),
            ["--optimizer"] = options.Optimizer,
            ["--momentum"] = options.Momentum.ToString("R", c),
            ["--l1"] = options.L1.ToString("R", c),
            ["--l2"] = options.L2.ToString("R", c),
            ["--seed"] = options.Seed.ToString(c),
            ["--lr-schedule"] = options.Schedule.ToString(),
            ["shuffling"] = options.Shuffle.ToString(),
            ["--early-stopping"] = options.EarlyStoppingPatience.ToString(c),
            ["training samples"] = trainCount.ToString(c),
            ["features"] = featureCount.ToString(c),
        };
    }

    /// <summary>The fingerprint of a run: a hash of <see cref="RunOf"/>'s values, in order (as checkpoints have always carried).</summary>
    public static string FingerprintOf(string modelJson, TrainingOptions options, int trainCount, int featureCount) =>
        FingerprintOf(RunOf(modelJson, options, trainCount, featureCount));

    /// <summary>The fingerprint of the run <paramref name="run"/> (made by <see cref="RunOf"/>) describes.</summary>
    public static string FingerprintOf(Dictionary<string, string> run) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('|', run.Values))));

    /// <summary>The fields of <see cref="RunOf"/> the checkpoint was written with; null in checkpoints written before they were kept.</summary>
    public Dictionary<string, string>? Run { get; init; }

    /// <summary>Serialises the checkpoint.</summary>
    public byte[] ToBytes()
    {
        var header = JsonSerializer.SerializeToUtf8Bytes(new Envelope(Fingerprint, Header, OptimizerState.Count, BestParameters is not null, Run), Json);
        var floats = Parameters.Length * (1 + OptimizerState.Count + (BestParameters is null ? 0 : 1));
        var bytes = new byte[Magic.Length + 8 + header.Length + 4 + floats * 4L + 32];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        var at = Magic.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 4)..], header.Length);
        at += 8;
        header.CopyTo(span[at..]);
        at += header.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], Parameters.Length);
        at += 4;
        foreach (var buffer in new[] { Parameters }.Concat(OptimizerState).Concat(BestParameters is null ? [] : [BestParameters]))
        {
            if (buffer.Length != Parameters.Length)
            {
                throw new InvalidOperationException("Every checkpoint buffer must have the parameters' length.");
            }

            System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()).CopyTo(span[at..]);
            at += buffer.Length * 4;
        }

        SHA256.HashData(span[..at], span[at..]);
        return bytes;
    }

    /// <summary>Reads a checkpoint, checking magic, version, lengths and checksum.</summary>
    public static Checkpoint FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Magic.Length + 12 + 32 || !bytes.StartsWith(Magic))
        {
            throw new InvalidDataException("not a checkpoint (bad magic or too short)");
        }

        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(bytes[..^32], digest);
        if (!digest.SequenceEqual(bytes[^32..]))
        {
            throw new InvalidDataException("checksum mismatch (the file is corrupt or was cut short)");
        }

        var at = Magic.Length;
        var version = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
        if (version != Version)
        {
            throw new InvalidDataException($"unsupported checkpoint version {version}");
        }

        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes[(at + 4)..]);
        at += 8;
        if (headerLength < 0 || at + headerLength + 4 > bytes.Length - 32)
        {
            throw new InvalidDataException("header length out of range");
        }

        var envelope = JsonSerializer.Deserialize<Envelope>(bytes.Slice(at, headerLength), Json) ?? throw new InvalidDataException("empty header");
        at += headerLength;
        var count = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
        at += 4;
        var buffers = 1 + envelope.OptimizerBuffers + (envelope.HasBest ? 1 : 0);
        if (count < 0 || envelope.OptimizerBuffers is < 0 or > 8 || at + (long)count * 4 * buffers != bytes.Length - 32)
        {
            throw new InvalidDataException("buffer sizes do not match the file length");
        }

        float[] Next(ref int offset, ReadOnlySpan<byte> source)
        {
            var values = new float[count];
            source.Slice(offset, count * 4).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            offset += count * 4;
            return values;
        }

        var parameters = Next(ref at, bytes);
        var state = new List<float[]>();
        for (var i = 0; i < envelope.OptimizerBuffers; i++)
        {
            state.Add(Next(ref at, bytes));
        }

        var best = envelope.HasBest ? Next(ref at, bytes) : null;
        return new Checkpoint { Fingerprint = envelope.Fingerprint, Header = envelope.Header, Parameters = parameters, OptimizerState = state, BestParameters = best, Run = envelope.Run };
    }

    private sealed record Envelope(string Fingerprint, CheckpointHeader Header, int OptimizerBuffers, bool HasBest, Dictionary<string, string>? Run = null);
}

/// <summary>The scalar part of a checkpoint.</summary>
public sealed record CheckpointHeader
{
    /// <summary>Epoch in progress (zero-based).</summary>
    public int Epoch { get; init; }

    /// <summary>Steps done in that epoch.</summary>
    public int StepInEpoch { get; init; }

    /// <summary>Steps done in the run.</summary>
    public long GlobalStep { get; init; }

    /// <summary>Loss sum of the epoch so far.</summary>
    public double EpochLossSum { get; init; }

    /// <summary>Correct predictions of the epoch so far.</summary>
    public long EpochCorrect { get; init; }

    /// <summary>Squared-error sum of the epoch so far.</summary>
    public double EpochSquaredError { get; init; }

    /// <summary>Samples of the epoch so far.</summary>
    public long EpochCount { get; init; }

    /// <summary>Training seconds of the epoch so far.</summary>
    public double EpochSeconds { get; init; }

    /// <summary>Optimizer steps (Adam's bias correction).</summary>
    public long OptimizerSteps { get; init; }

    /// <summary>Best validation loss.</summary>
    public double BestValidationLoss { get; init; } = double.PositiveInfinity;

    /// <summary>Epoch of the best validation loss.</summary>
    public int BestEpoch { get; init; }

    /// <summary>Epochs without improvement.</summary>
    public int EpochsWithoutImprovement { get; init; }

    /// <summary>Early stopping ended the run.</summary>
    public bool StoppedEarly { get; init; }

    /// <summary>Finished epochs.</summary>
    public List<EpochRecord> History { get; init; } = [];

    /// <summary>The seed every random choice derives from.</summary>
    public ulong Seed { get; init; }
}
