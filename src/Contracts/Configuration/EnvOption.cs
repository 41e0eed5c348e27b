using System.CommandLine;
using System.Globalization;

namespace Cluster.Contracts.Configuration;

/// <summary>
/// Options with an environment-variable twin: the flag wins, then the variable, then the default. Every option made
/// here is recorded so tests can check that deployment manifests only use flags and variables that exist.
/// </summary>
public static class EnvOption
{
    private static readonly Dictionary<string, string?> KnownOptions = new(StringComparer.Ordinal);
    private static readonly Lock RegistryLock = new();

    /// <summary>Every (flag, environment variable) pair the command line knows.</summary>
    public static IReadOnlyDictionary<string, string?> Registry
    {
        get
        {
            lock (RegistryLock)
            {
                return new Dictionary<string, string?>(KnownOptions);
            }
        }
    }

    /// <summary>Creates an option whose default comes from <paramref name="env"/> when set, else <paramref name="fallback"/>.</summary>
    public static Option<T> Create<T>(string name, string description, string? env, T fallback)
    {
        var option = new Option<T>(name)
        {
            Description = env is null ? description : $"{description} [env: {env}]",
            DefaultValueFactory = _ => FromEnvironment(env, fallback),
        };
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        if (type == typeof(float) || type == typeof(double))
        {
            // Numbers in the invariant culture without thousands separators: by default "--lr 0,1" read as 1.
            option.CustomParser = result =>
            {
                var token = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
                if (ParseErrors.TryParse(type, token, out var value))
                {
                    return (T)value;
                }

                result.AddError($"{name} takes {ParseErrors.Expected(type)}; '{token}' is not one.");
                return fallback;
            };
        }

        lock (RegistryLock)
        {
            KnownOptions[name] = env;
        }

        return option;
    }

    /// <summary>Reads and converts an environment variable, naming it in the error when it cannot be parsed.</summary>
    public static T FromEnvironment<T>(string? env, T fallback)
    {
        var raw = env is null ? null : Environment.GetEnvironmentVariable(env);
        if (string.IsNullOrWhiteSpace(raw))
        {
            return fallback;
        }

        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        try
        {
            object value = type == typeof(string) ? raw
                : type == typeof(bool) ? ParseBool(raw)
                : ParseErrors.Expected(type) is not null ? (ParseErrors.TryParse(type, raw.Trim(), out var number) ? number : throw new FormatException())
                : Convert.ChangeType(raw, type, CultureInfo.InvariantCulture);
            return (T)value;
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
        {
            throw new ArgumentException($"Environment variable {env}='{raw}' is not {ParseErrors.Expected(type) ?? $"a valid {type.Name}"}; fix or unset it.", ex);
        }
    }

    private static bool ParseBool(string raw) => raw.Trim().ToLowerInvariant() switch
    {
        "1" or "true" or "yes" or "on" => true,
        "0" or "false" or "no" or "off" => false,
        _ => throw new FormatException(),
    };
}
