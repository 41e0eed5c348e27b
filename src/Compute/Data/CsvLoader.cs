using System.Globalization;

namespace Cluster.Compute.Data;

/// <summary>What the label column of a CSV file means.</summary>
public enum CsvTask
{
    /// <summary>Classification when the labels are text or a few whole numbers, regression otherwise.</summary>
    Auto,

    /// <summary>Labels are classes.</summary>
    Classification,

    /// <summary>Labels are real-valued targets.</summary>
    Regression,
}

/// <summary>Loads small tabular data: a header row, numeric feature columns and one named label column.</summary>
public static class CsvLoader
{
    /// <summary>Most distinct whole-number labels that auto-detection still treats as classes.</summary>
    public const int MaxAutoClasses = 20;

    /// <summary>
    /// Loads <paramref name="path"/>; <paramref name="labelColumn"/> names the label (null: feature columns only, for
    /// prediction). A column named <paramref name="skipColumn"/>, when there is one, is left out whatever it holds.
    /// </summary>
    public static Dataset Load(string path, string? labelColumn, CsvTask task = CsvTask.Auto, string[]? classNames = null, string? skipColumn = null)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"CSV file not found: {path}", path);
        }

        using var reader = new StreamReader(path);
        return Load(reader, Path.GetFileName(path), labelColumn, task, classNames, skipColumn);
    }

    /// <summary>Loads CSV text; <paramref name="name"/> names it in errors.</summary>
    public static Dataset Load(TextReader reader, string name, string? labelColumn, CsvTask task = CsvTask.Auto, string[]? classNames = null, string? skipColumn = null)
    {
        var header = reader.ReadLine() ?? throw new InvalidDataException($"{name}: the file is empty; it needs a header row.");
        var columns = Split(header).Select(c => c.Trim()).ToArray();
        // Columns are found by name (the label, and features matched to a model's), so each needs its own.
        for (var i = 1; i < columns.Length; i++)
        {
            var first = Array.FindIndex(columns, 0, i, c => string.Equals(c, columns[i], StringComparison.OrdinalIgnoreCase));
            if (first >= 0)
            {
                throw new InvalidDataException($"{name}: columns {first + 1} and {i + 1} are both named '{columns[i]}'; each column needs a name of its own (names are compared ignoring case).");
            }
        }

        var labelIndex = -1;
        if (labelColumn is not null)
        {
            labelIndex = Array.FindIndex(columns, c => string.Equals(c, labelColumn, StringComparison.OrdinalIgnoreCase));
            if (labelIndex < 0)
            {
                // A file of one column whose name holds ';' or a tab was most likely written with another separator.
                var separator = columns.Length == 1 ? new[] { ';', '\t', '|' }.FirstOrDefault(c => columns[0].Contains(c)) : '\0';
                var hint = separator == '\0' ? "" : $" The header has no commas but '{(separator == '\t' ? "\\t" : separator)}': fields must be separated by commas.";
                throw new InvalidDataException($"{name}: no column named '{labelColumn}'; the columns are {string.Join(", ", columns)}.{hint}");
            }
        }

        var skipIndex = skipColumn is null ? -1 : Array.FindIndex(columns, c => string.Equals(c, skipColumn, StringComparison.OrdinalIgnoreCase));
        var featureNames = columns.Where((_, i) => i != labelIndex && i != skipIndex).ToArray();
        if (featureNames.Length == 0)
        {
            throw new InvalidDataException($"{name}: no feature columns besides the label.");
        }

        var features = new List<float>();
        var labels = new List<string>();
        var lineNumber = 1;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var cells = Split(line);
            if (cells.Count != columns.Length)
            {
                throw new InvalidDataException($"{name}, line {lineNumber}: {cells.Count} fields, the header has {columns.Length}.");
            }

            for (var i = 0; i < cells.Count; i++)
            {
                if (i == labelIndex)
                {
                    labels.Add(cells[i].Trim());
                    continue;
                }

                if (i == skipIndex)
                {
                    continue;
                }

                if (!float.TryParse(cells[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !float.IsFinite(value))
                {
                    throw new InvalidDataException($"{name}, line {lineNumber}: column '{columns[i]}' holds '{cells[i].Trim()}', not a finite number.");
                }

                features.Add(value);
            }
        }

        var count = features.Count / featureNames.Length;
        if (count == 0)
        {
            throw new InvalidDataException($"{name}: no data rows.");
        }

        if (labelIndex < 0)
        {
            // Feature-only data (prediction input): a dummy regression target keeps the dataset well-formed.
            return new Dataset(name, featureNames.Length, [.. features], null, 0, new float[count], 1, featureNames: featureNames);
        }

        var numeric = labels.Select(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : (double?)null).ToList();
        var allNumeric = numeric.All(v => v.HasValue && double.IsFinite(v.Value));
        var resolved = task;
        if (resolved == CsvTask.Auto)
        {
            var wholeAndFew = allNumeric && numeric.All(v => v!.Value == Math.Floor(v.Value)) && numeric.Distinct().Count() <= MaxAutoClasses;
            resolved = !allNumeric || wholeAndFew ? CsvTask.Classification : CsvTask.Regression;
        }

        if (resolved == CsvTask.Regression)
        {
            if (!allNumeric)
            {
                var bad = labels[numeric.FindIndex(v => !v.HasValue || !double.IsFinite(v.Value))];
                throw new InvalidDataException($"{name}: regression needs numeric labels, but '{labelColumn}' holds '{bad}'.");
            }

            return new Dataset(name, featureNames.Length, [.. features], null, 0, [.. numeric.Select(v => (float)v!.Value)], 1, featureNames: featureNames);
        }

        var names = classNames ?? (allNumeric
            ? [.. labels.Distinct().OrderBy(l => double.Parse(l, CultureInfo.InvariantCulture))]
            : [.. labels.Distinct().Order(StringComparer.Ordinal)]);
        if (names.Length < 2)
        {
            throw new InvalidDataException($"{name}: classification needs at least two classes in '{labelColumn}', found {names.Length}.");
        }

        var map = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i);
        var classes = new int[labels.Count];
        for (var i = 0; i < labels.Count; i++)
        {
            if (!map.TryGetValue(labels[i], out classes[i]))
            {
                throw new InvalidDataException($"{name}: label '{labels[i]}' is not one of the model's classes ({string.Join(", ", names)}).");
            }
        }

        return new Dataset(name, featureNames.Length, [.. features], classes, names.Length, classNames: names, featureNames: featureNames);
    }

    private static List<string> Split(string line)
    {
        var cells = new List<string>();
        var current = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var ch = line[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    current.Append('"');
                    i++;
                }
                else if (ch == '"')
                {
                    quoted = false;
                }
                else
                {
                    current.Append(ch);
                }
            }
            else if (ch == '"')
            {
                quoted = true;
            }
            else if (ch == ',')
            {
                cells.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(ch);
            }
        }

        cells.Add(current.ToString());
        return cells;
    }
}
