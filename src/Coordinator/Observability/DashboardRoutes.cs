using Cluster.Coordinator.Grains;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Cluster.Coordinator.Observability;

/// <summary>The coordinator's extra HTTP routes: the live dashboard page and the JSON it polls.</summary>
public static class DashboardRoutes
{
    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(DashboardRoutes).Assembly.GetManifestResourceStream("Cluster.Coordinator.Observability.dashboard.html")
            ?? throw new InvalidOperationException("The dashboard page is missing from the assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    /// <summary>Maps /dashboard and /api/status for <paramref name="grain"/>.</summary>
    public static void Map(WebApplication app, CoordinatorGrain grain) => Map(app, () => grain);

    /// <summary>Maps the routes for a grain that may not exist yet (the HTTP side starts before the data is loaded).</summary>
    public static void Map(WebApplication app, Func<CoordinatorGrain?> grain)
    {
        app.MapGet("/", () => Results.Redirect("/dashboard"));
        app.MapGet("/dashboard", () => Results.Bytes(Page.Value, "text/html; charset=utf-8"));
        app.MapGet("/api/status", async () => grain() is { } g
            ? Results.Bytes(await StatusJson.BuildAsync(g).ConfigureAwait(false), "application/json")
            : Results.Json(new { state = "starting" }, statusCode: StatusCodes.Status503ServiceUnavailable));
    }
}
