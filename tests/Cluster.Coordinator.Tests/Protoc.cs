namespace Cluster.Coordinator.Tests;

/// <summary>Finds the protoc that Grpc.Tools brought with it (the same one that compiled the contracts).</summary>
internal static class Protoc
{
    public static string Find()
    {
        var roots = new[] { Environment.GetEnvironmentVariable("NUGET_PACKAGES"), Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages") };
        foreach (var root in roots.Where(r => !string.IsNullOrEmpty(r)))
        {
            var tools = Path.Combine(root!, "grpc.tools");
            if (!Directory.Exists(tools))
            {
                continue;
            }

            var found = Directory.GetFiles(tools, "protoc", SearchOption.AllDirectories).FirstOrDefault(p => p.Contains("linux_x64", StringComparison.Ordinal));
            if (found is not null)
            {
                return found;
            }
        }

        throw new FileNotFoundException("protoc from the Grpc.Tools package was not found in the NuGet package folder.");
    }
}
