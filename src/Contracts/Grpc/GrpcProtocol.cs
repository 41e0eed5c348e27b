using System.Globalization;

namespace Cluster.Contracts.Grpc;

/// <summary>Names and header values of the gRPC-over-HTTP/2 protocol used on both ends.</summary>
public static class GrpcProtocol
{
    /// <summary>Content type of gRPC requests and responses.</summary>
    public const string ContentType = "application/grpc";

    /// <summary>Trailer carrying the status code.</summary>
    public const string StatusHeader = "grpc-status";

    /// <summary>Trailer carrying the (percent-encoded) status message.</summary>
    public const string MessageHeader = "grpc-message";

    /// <summary>Request header carrying the deadline.</summary>
    public const string TimeoutHeader = "grpc-timeout";

    /// <summary>Request header naming the message compression.</summary>
    public const string EncodingHeader = "grpc-encoding";

    /// <summary>The coordinator service's full name.</summary>
    public const string Service = "cluster.v1.Coordinator";

    /// <summary>Path of the Join stream.</summary>
    public const string JoinPath = "/" + Service + "/Join";

    /// <summary>Path of GetStatus.</summary>
    public const string GetStatusPath = "/" + Service + "/GetStatus";

    /// <summary>Default largest message either end accepts (megabyte tensors fit many times over).</summary>
    public const int DefaultMaxMessageBytes = 64 * 1024 * 1024;

    /// <summary>
    /// The least --max-message-mb bytes a model of <paramref name="parameters"/> needs: a step's weights (to a worker) and
    /// its gradient (to the coordinator) each travel whole in one message, with a block mask (a bit per 32 values) and
    /// a few fields beside them.
    /// </summary>
    public static long NeededMessageBytes(int parameters) => parameters * (long)sizeof(float) + parameters / 256 + 4096;

    /// <summary>Why <paramref name="maxMessageBytes"/> cannot carry a model of <paramref name="parameters"/>, or null when it can.</summary>
    public static string? MessageLimitProblem(int maxMessageBytes, int parameters)
    {
        var needed = NeededMessageBytes(parameters);
        return maxMessageBytes >= needed ? null
            : $"--max-message-mb {maxMessageBytes / (1024 * 1024)} is too small for this model: its {parameters:N0} parameters make {needed / (1024.0 * 1024):0.0} MiB messages (a step's weights, its gradient); give at least {(needed + 1024 * 1024 - 1) / (1024 * 1024)}.";
    }

    /// <summary>A --max-message-mb value in bytes: 1 to 2047 MiB (a message's length field is 32 bits).</summary>
    public static int MaxMessageBytesOf(int megabytes) => megabytes is >= 1 and <= 2047
        ? megabytes * 1024 * 1024
        : throw new ArgumentException($"--max-message-mb must be 1 to 2047 (MiB), not {megabytes}.");

    /// <summary>Formats a timeout as the grpc-timeout header ("250m", "30S").</summary>
    public static string FormatTimeout(TimeSpan timeout)
    {
        var ms = (long)Math.Ceiling(timeout.TotalMilliseconds);
        return ms < 100_000_000 ? ms.ToString(CultureInfo.InvariantCulture) + "m" : ((long)Math.Ceiling(timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture) + "S";
    }

    /// <summary>Parses a grpc-timeout header (1-8 digits and a unit H, M, S, m, u, n); null when malformed.</summary>
    public static TimeSpan? ParseTimeout(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return null;
        }

        if (!long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            return null;
        }

        return value[^1] switch
        {
            'H' => TimeSpan.FromHours(amount),
            'M' => TimeSpan.FromMinutes(amount),
            'S' => TimeSpan.FromSeconds(amount),
            'm' => TimeSpan.FromMilliseconds(amount),
            'u' => TimeSpan.FromTicks(amount * 10),
            'n' => TimeSpan.FromTicks(amount / 100),
            _ => null,
        };
    }

    /// <summary>Percent-encodes a status message as the protocol requires.</summary>
    public static string EncodeMessage(string message)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(message);
        var sb = new System.Text.StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                sb.Append((char)b);
            }
            else
            {
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }

    /// <summary>Decodes a percent-encoded status message.</summary>
    public static string DecodeMessage(string? encoded)
    {
        if (string.IsNullOrEmpty(encoded))
        {
            return "";
        }

        try
        {
            return Uri.UnescapeDataString(encoded);
        }
        catch (UriFormatException)
        {
            return encoded;
        }
    }
}
