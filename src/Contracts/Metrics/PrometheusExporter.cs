using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Cluster.Contracts.Metrics;

/// <summary>
/// Prometheus text exposition (format 0.0.4) of System.Diagnostics.Metrics instruments, collected with a
/// <see cref="MeterListener"/>: counters are summed, histograms bucketed, gauges and observable instruments read at
/// scrape time. Listens to the product's meter and the runtime's own System.Runtime meter.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    private static readonly double[] DefaultBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Series> _series = new();
    private readonly HashSet<string> _meters;
    private readonly Lock _scrape = new();

    /// <summary>
    /// Starts listening to the product's meters created with <paramref name="scope"/> (so several runs in one process
    /// keep apart) and to the runtime's System.Runtime meter.
    /// </summary>
    public PrometheusExporter(object scope)
    {
        _meters = [MetricNames.Meter, "System.Runtime"];
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            var mine = instrument.Meter.Name == MetricNames.Meter ? ReferenceEquals(instrument.Meter.Scope, scope) : _meters.Contains(instrument.Meter.Name);
            if (mine)
            {
                _series[instrument] = new Series(instrument);
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.MeasurementsCompleted = (instrument, _) => _series.TryRemove(instrument, out Series? _);
        _listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<float>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<short>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<byte>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<decimal>((i, v, t, _) => Record(i, (double)v, t));
        _listener.Start();
    }

    /// <summary>The Prometheus name of an instrument.</summary>
    public static string PrometheusName(string name, string? unit, bool counter, bool histogram = false)
    {
        var sb = new StringBuilder(name.Length + 16);
        foreach (var c in name)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || c == ':' ? c : '_');
        }

        var suffix = unit switch
        {
            "s" => "_seconds",
            "ms" => "_milliseconds",
            "By" => "_bytes",
            "1" => "_ratio",
            _ => "",
        };
        if (suffix.Length > 0 && !sb.ToString().EndsWith(suffix, StringComparison.Ordinal))
        {
            sb.Append(suffix);
        }

        // _count, _sum and _bucket belong to histograms; a gauge such as dotnet.assembly.count gets another ending.
        foreach (var reserved in new[] { "_count", "_sum", "_bucket" })
        {
            if (!histogram && !counter && sb.ToString().EndsWith(reserved, StringComparison.Ordinal))
            {
                sb.Length -= reserved.Length;
                sb.Append(reserved == "_count" ? "_number" : reserved + "_value");
            }
        }

        if (counter)
        {
            sb.Append("_total");
        }

        return sb.ToString();
    }

    /// <summary>Writes every series in the text format.</summary>
    public string Scrape()
    {
        lock (_scrape)
        {
            foreach (var s in _series.Values)
            {
                s.ResetObservations();
            }

            _listener.RecordObservableInstruments();
            var sb = new StringBuilder(4096);
            foreach (var group in _series.Values.GroupBy(s => s.Name).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var first = group.First();
                sb.Append("# HELP ").Append(group.Key).Append(' ').Append(Escape(first.Instrument.Description ?? group.Key, help: true)).Append('\n');
                sb.Append("# TYPE ").Append(group.Key).Append(' ').Append(first.Type).Append('\n');
                foreach (var s in group)
                {
                    s.Write(sb);
                }
            }

            return sb.ToString();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_series.TryGetValue(instrument, out var s))
        {
            s.Record(value, tags);
        }
    }

    internal static string Escape(string value, bool help = false)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            switch (c)
            {
                case '\\':
                    sb.Append(@"\\");
                    break;
                case '\n':
                    sb.Append(@"\n");
                    break;
                case '"' when !help:
                    sb.Append("\\\"");
                    break;
                default:
                    sb.Append(c);
                    break;
            }
        }

        return sb.ToString();
    }

    /// <summary>All label sets of one instrument.</summary>
    private sealed class Series
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<string, Point> _points = new(StringComparer.Ordinal);
        private readonly double[] _buckets;
        private readonly bool _observable;
        private readonly bool _histogram;
        private readonly bool _cumulative;

        public Series(Instrument instrument)
        {
            Instrument = instrument;
            var type = instrument.GetType();
            var generic = type.IsGenericType ? type.GetGenericTypeDefinition() : type;
            _observable = instrument.IsObservable;
            _histogram = generic == typeof(Histogram<>);
            _cumulative = generic == typeof(Counter<>) || generic == typeof(ObservableCounter<>);
            Type = _histogram ? "histogram" : _cumulative ? "counter" : "gauge";
            Name = PrometheusName(instrument.Name, instrument.Unit, _cumulative, _histogram);
            _buckets = _histogram ? AdviceBuckets(instrument) ?? DefaultBuckets : [];
        }

        public Instrument Instrument { get; }

        public string Name { get; }

        public string Type { get; }

        public void ResetObservations()
        {
            if (_observable)
            {
                lock (_lock)
                {
                    _points.Clear();
                }
            }
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = Labels(tags);
            lock (_lock)
            {
                if (!_points.TryGetValue(key, out var p))
                {
                    p = new Point(_buckets.Length);
                    _points[key] = p;
                }

                if (_histogram)
                {
                    p.Sum += value;
                    p.Count++;
                    for (var i = 0; i < _buckets.Length; i++)
                    {
                        if (value <= _buckets[i])
                        {
                            p.Buckets[i]++;
                        }
                    }
                }
                else if (_cumulative && !_observable)
                {
                    p.Value += value;
                }
                else if (!_observable && Instrument.GetType().GetGenericTypeDefinition() == typeof(UpDownCounter<>))
                {
                    p.Value += value;
                }
                else
                {
                    p.Value = value;
                }
            }
        }

        public void Write(StringBuilder sb)
        {
            lock (_lock)
            {
                foreach (var (labels, p) in _points.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (!_histogram)
                    {
                        sb.Append(Name).Append(Braces(labels)).Append(' ').Append(Number(p.Value)).Append('\n');
                        continue;
                    }

                    for (var i = 0; i < _buckets.Length; i++)
                    {
                        sb.Append(Name).Append("_bucket").Append(Braces(Join(labels, $"le=\"{Number(_buckets[i])}\""))).Append(' ').Append(p.Buckets[i]).Append('\n');
                    }

                    sb.Append(Name).Append("_bucket").Append(Braces(Join(labels, "le=\"+Inf\""))).Append(' ').Append(p.Count).Append('\n');
                    sb.Append(Name).Append("_sum").Append(Braces(labels)).Append(' ').Append(Number(p.Sum)).Append('\n');
                    sb.Append(Name).Append("_count").Append(Braces(labels)).Append(' ').Append(p.Count).Append('\n');
                }
            }
        }

        private static double[]? AdviceBuckets(Instrument instrument) =>
            instrument switch
            {
                Histogram<double> h => h.Advice?.HistogramBucketBoundaries?.ToArray(),
                _ => null,
            };

        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length == 0)
            {
                return "";
            }

            var pairs = new List<string>(tags.Length);
            foreach (var tag in tags)
            {
                var name = new StringBuilder();
                foreach (var c in tag.Key)
                {
                    name.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
                }

                pairs.Add($"{name}=\"{Escape(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "")}\"");
            }

            pairs.Sort(StringComparer.Ordinal);
            return string.Join(',', pairs);
        }

        private static string Join(string a, string b) => a.Length == 0 ? b : a + "," + b;

        private static string Braces(string labels) => labels.Length == 0 ? "" : "{" + labels + "}";

        private static string Number(double v) =>
            double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);

        private sealed class Point(int buckets)
        {
            public double Value;
            public double Sum;
            public long Count;
            public long[] Buckets = new long[buckets];
        }
    }
}
