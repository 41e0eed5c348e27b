using System.Text.Json;

namespace Cluster.Coordinator.Tests;

/// <summary>The executables' runtime settings that the cluster's throughput figures depend on.</summary>
public sealed class RuntimeConfigTests
{
    [Theory]
    [InlineData("cluster")]
    [InlineData("WorkerSilo")]
    public void Executable_CompilesOptimizedAtOnce_AndIdleThreadsSleep(string executable)
    {
        var path = Path.Combine(AppContext.BaseDirectory, executable + ".runtimeconfig.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var properties = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.False(properties.GetProperty("System.Runtime.TieredCompilation").GetBoolean());
        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
        Assert.False(properties.GetProperty("System.GC.Server").GetBoolean());
    }
}
