using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Cluster.Contracts.Configuration;

/// <summary>
/// Reports command-line mistakes as a few lines on standard error, in this command line's words, instead of
/// System.CommandLine's default: its message (which names .NET types, e.g. 'System.UInt64') followed by the whole help
/// on standard output.
/// </summary>
public static class ParseErrors
{
    /// <summary>
    /// Writes <paramref name="parse"/>'s errors, each once, with what a mistyped value should be, a close option name
    /// for an unknown one, and where the help is; returns false (writing nothing) when there are none, or when no
    /// argument was given at all (then the help itself is the better answer).
    /// </summary>
    public static bool Report(ParseResult parse, TextWriter error)
    {
        if (parse.Errors.Count == 0 || parse.Tokens.Count == 0)
        {
            return false;
        }

        // A command that needs a subcommand and got an unknown word: the unknown word is the error to explain.
        var errors = parse.Errors.Where(e => !(NeedsSubcommand(e) && parse.UnmatchedTokens.Count > 0 && !Mentions(e, parse.UnmatchedTokens)));
        foreach (var line in errors.Select(e => Explain(e, parse)).Distinct(StringComparer.Ordinal))
        {
            error.WriteLine($"error: {line}");
        }

        var what = parse.CommandResult.Command.Subcommands.Count > 0 ? "commands and options" : "options";
        error.WriteLine($"Run '{CommandPath(parse.CommandResult)} --help' for its {what}.");
        return true;
    }

    private static bool NeedsSubcommand(ParseError error) => error.SymbolResult is CommandResult { Command: { Action: null, Subcommands.Count: > 0 } };

    private static bool Mentions(ParseError error, IEnumerable<string> tokens) => tokens.Any(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal));

    /// <summary>One error in the command line's words.</summary>
    internal static string Explain(ParseError error, ParseResult parse)
    {
        if (NeedsSubcommand(error) && !Mentions(error, parse.UnmatchedTokens))
        {
            var command = ((CommandResult)error.SymbolResult!).Command;
            return $"'{CommandPath((CommandResult)error.SymbolResult)}' needs one of its commands: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}.";
        }

        var option = (error.SymbolResult as OptionResult ?? error.SymbolResult?.Parent as OptionResult)?.Option;
        if (option is not null && error.SymbolResult!.Tokens.Count > 0 && Expected(option.ValueType) is { } expected)
        {
            var value = error.SymbolResult.Tokens[^1].Value;
            if (!TryParse(Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType, value, out _))
            {
                return $"{option.Name} takes {expected}; '{value}' is not one.";
            }
        }

        if (parse.UnmatchedTokens.FirstOrDefault(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal)) is { } unknown
            && Closest(unknown, parse.CommandResult.Command) is { } suggestion)
        {
            return $"{error.Message} Did you mean '{suggestion}'?";
        }

        return error.Message;
    }

    /// <summary>What a value of <paramref name="type"/> is, for the types the options use; null for the others.</summary>
    internal static string? Expected(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) || t == typeof(long) => "a whole number",
        var t when t == typeof(ulong) => "a whole number, 0 or more",
        var t when t == typeof(double) || t == typeof(float) => "a number (e.g. 0.1 or 1e-3)",
        var t when t == typeof(bool) => "true or false",
        _ => null,
    };

    /// <summary>
    /// Reads a number as the command line means it: invariant culture, no thousands separators (so "0,1" is refused, not
    /// read as 1). <paramref name="type"/> is int, long, ulong, float or double; bool is "true" or "false".
    /// </summary>
    internal static bool TryParse(Type type, string text, out object value)
    {
        var invariant = CultureInfo.InvariantCulture;
        (bool Ok, object Value) result = type switch
        {
            var t when t == typeof(int) => (int.TryParse(text, NumberStyles.Integer, invariant, out var v), v),
            var t when t == typeof(long) => (long.TryParse(text, NumberStyles.Integer, invariant, out var v), v),
            var t when t == typeof(ulong) => (ulong.TryParse(text, NumberStyles.Integer, invariant, out var v), v),
            var t when t == typeof(float) => (float.TryParse(text, NumberStyles.Float, invariant, out var v), v),
            var t when t == typeof(double) => (double.TryParse(text, NumberStyles.Float, invariant, out var v), v),
            var t when t == typeof(bool) => (bool.TryParse(text, out var v), v),
            _ => (false, text),
        };
        value = result.Value;
        return result.Ok;
    }

    /// <summary>
    /// The command's option (for a word starting with "--") or subcommand (for another) nearest to
    /// <paramref name="unknown"/>, if it is at most two edits away.
    /// </summary>
    private static string? Closest(string unknown, Command command)
    {
        var names = unknown.StartsWith("--", StringComparison.Ordinal)
            ? command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal))
            : command.Subcommands.Select(c => c.Name);
        var best = names.Select(n => (Name: n, Distance: Distance(unknown, n))).OrderBy(p => p.Distance).ThenBy(p => p.Name, StringComparer.Ordinal).FirstOrDefault();
        return best.Name is not null && best.Distance <= 2 ? best.Name : null;
    }

    /// <summary>Levenshtein distance: single-character insertions, deletions and substitutions.</summary>
    internal static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
        {
            if (r is CommandResult c)
            {
                names.Add(c.Command is RootCommand ? RootName(c.Command) : c.Command.Name);
            }
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>The root's name as a user types it: its executable's name without ".dll".</summary>
    private static string RootName(Command root) => root.Name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? root.Name[..^4] : root.Name;
}
