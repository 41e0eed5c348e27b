using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Contracts.Metrics;

/// <summary>
/// The plain HTTP/1.1 side of every process, on its --http-port: /metrics (Prometheus text), /healthz (alive),
/// /readyz (ready for work), and whatever routes the process adds (the coordinator's dashboard and status JSON).
/// </summary>
public sealed class MetricsHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MetricsHost(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>The bound address (real port when 0 was asked).</summary>
    public Uri Address { get; }

    /// <summary>Starts serving on <paramref name="bind"/>:<paramref name="port"/> (0: any free port).</summary>
    public static async Task<MetricsHost> StartAsync(IPAddress bind, int port, PrometheusExporter exporter, Func<bool> ready, Action<WebApplication>? routes = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, Cluster.Contracts.Configuration.ProcessOwnedLifetime>();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(bind, port, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.MapGet("/metrics", (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return context.Response.WriteAsync(exporter.Scrape());
        });
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => ready() ? Results.Text("ready\n") : Results.Text("not ready\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        routes?.Invoke(app);
        await app.StartAsync().ConfigureAwait(false);
        var bound = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()
            .Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        return new MetricsHost(app, bound);
    }

    /// <summary>Parses a listen host ("0.0.0.0", "127.0.0.1", "::").</summary>
    public static IPAddress Bind(string host) =>
        host is "0.0.0.0" or "*" or "+" ? IPAddress.Any : host is "::" or "[::]" ? IPAddress.IPv6Any : IPAddress.TryParse(host.Trim('[', ']'), out var ip) ? ip : IPAddress.Loopback;

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
