using System.Diagnostics.Metrics;
using Cluster.Contracts.Metrics;

namespace Cluster.Contracts.Tests;

public sealed class PrometheusExporterTests
{
    [Fact]
    public void Scrape_CountersGaugesHistogramsAndLabels_InTextFormat()
    {
        var scope = new object();
        using var exporter = new PrometheusExporter(scope);
        using var meter = new Meter(new MeterOptions(MetricNames.Meter) { Scope = scope });
        var counter = meter.CreateCounter<long>("cluster.samples", description: "Samples");
        var gauge = meter.CreateGauge<double>("cluster.training.loss", description: "Loss");
        var histogram = meter.CreateHistogram("cluster.step.duration", "s", "Step", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 1] });
        var bytes = meter.CreateCounter<long>("cluster.transport.sent", "By");
        counter.Add(3);
        counter.Add(4);
        gauge.Record(0.5);
        gauge.Record(0.25);
        histogram.Record(0.05, new KeyValuePair<string, object?>("phase", "a\"b\\c\nd"));
        histogram.Record(0.5, new KeyValuePair<string, object?>("phase", "a\"b\\c\nd"));
        histogram.Record(5, new KeyValuePair<string, object?>("phase", "a\"b\\c\nd"));
        bytes.Add(10);
        var text = exporter.Scrape();
        Assert.Contains("# TYPE cluster_samples_total counter\ncluster_samples_total 7\n", text);
        Assert.Contains("# TYPE cluster_training_loss gauge\ncluster_training_loss 0.25\n", text);
        Assert.Contains("# TYPE cluster_step_duration_seconds histogram\n", text);
        Assert.Contains("cluster_step_duration_seconds_bucket{phase=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 1\n", text);
        Assert.Contains("cluster_step_duration_seconds_bucket{phase=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2\n", text);
        Assert.Contains("cluster_step_duration_seconds_bucket{phase=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n", text);
        Assert.Contains("cluster_step_duration_seconds_sum{phase=\"a\\\"b\\\\c\\nd\"} 5.55\n", text);
        Assert.Contains("cluster_step_duration_seconds_count{phase=\"a\\\"b\\\\c\\nd\"} 3\n", text);
        Assert.Contains("cluster_transport_sent_bytes_total 10\n", text);
    }

    [Fact]
    public void Scrape_OtherScopesAndMeters_AreNotMixedIn()
    {
        var mine = new object();
        using var exporter = new PrometheusExporter(mine);
        using var other = new Meter(new MeterOptions(MetricNames.Meter) { Scope = new object() });
        using var foreign = new Meter(new MeterOptions("Some.Library") { Scope = mine });
        other.CreateCounter<long>("cluster.samples").Add(1);
        foreign.CreateCounter<long>("library.calls").Add(1);
        var text = exporter.Scrape();
        Assert.DoesNotContain("cluster_samples_total", text);
        Assert.DoesNotContain("library_calls", text);
    }

    [Fact]
    public void Scrape_ObservableInstruments_AreReadAtScrapeTime()
    {
        var scope = new object();
        using var exporter = new PrometheusExporter(scope);
        using var meter = new Meter(new MeterOptions(MetricNames.Meter) { Scope = scope });
        var workers = 2L;
        meter.CreateObservableGauge("cluster.workers.active", () => workers);
        meter.CreateObservableGauge("cluster.worker.throughput", () => new[] { new Measurement<double>(5, new KeyValuePair<string, object?>("worker", "w1")) });
        Assert.Contains("cluster_workers_active 2\n", exporter.Scrape());
        workers = 3;
        var text = exporter.Scrape();
        Assert.Contains("cluster_workers_active 3\n", text);
        Assert.Contains("cluster_worker_throughput{worker=\"w1\"} 5\n", text);
    }

    [Theory]
    [InlineData("cluster.step.duration", "s", false, false, "cluster_step_duration_seconds")]
    [InlineData("cluster.transport.sent", "By", true, false, "cluster_transport_sent_bytes_total")]
    [InlineData("dotnet.assembly.count", "{assembly}", false, false, "dotnet_assembly_number")]
    [InlineData("cluster.samples", null, true, false, "cluster_samples_total")]
    [InlineData("weird-name.x", null, false, false, "weird_name_x")]
    public void PrometheusName_FollowsConventions(string name, string? unit, bool counter, bool histogram, string expected) =>
        Assert.Equal(expected, PrometheusExporter.PrometheusName(name, unit, counter, histogram));
}
