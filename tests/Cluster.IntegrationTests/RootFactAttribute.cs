using System.Diagnostics;

namespace Cluster.IntegrationTests;

/// <summary>A fact that needs root and iproute2 (network namespaces); elsewhere it is skipped with that reason.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "needs Linux network namespaces";
        }
        else if (Environment.GetEnvironmentVariable("USER") != "root" && !IsRoot())
        {
            Skip = "needs root to create network namespaces (ip netns)";
        }
        else if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
        {
            Skip = "needs iproute2 (ip)";
        }
        else if (!CanCreateNamespace())
        {
            Skip = "this machine does not allow creating network namespaces (ip netns add failed)";
        }
    }

    private static bool CanCreateNamespace()
    {
        var name = "clprobe" + Environment.ProcessId;
        try
        {
            using var add = Process.Start(new ProcessStartInfo("ip", $"netns add {name}") { RedirectStandardError = true })!;
            add.WaitForExit();
            if (add.ExitCode != 0)
            {
                return false;
            }

            using var del = Process.Start(new ProcessStartInfo("ip", $"netns del {name}") { RedirectStandardError = true })!;
            del.WaitForExit();
            return true;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static bool IsRoot()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("id", "-u") { RedirectStandardOutput = true })!;
            return p.StandardOutput.ReadToEnd().Trim() == "0";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
