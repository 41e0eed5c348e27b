namespace Cluster.IntegrationTests;

/// <summary>Paths in the repository the tests run from.</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    /// <summary>Where tests leave artefacts (screenshots, scrapes) for people to look at.</summary>
    public static string Artifacts
    {
        get
        {
            var dir = Path.Combine(Root, "artifacts", "test-results");
            Directory.CreateDirectory(dir);
            return dir;
        }
    }

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cluster.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Cluster.sln not found above the test folder.");
    }
}
