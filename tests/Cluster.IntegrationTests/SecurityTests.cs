using Cluster.Tests.Shared;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Compute.Backends;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Cluster.Coordinator.Grains;
using Cluster.Coordinator.Hosting;
using Cluster.WorkerSilo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.IntegrationTests;

public sealed class SecurityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-tls").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A self-signed certificate for 127.0.0.1, written as PEM files.</summary>
    private (string Cert, string Key) SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=cluster-test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var certPath = Path.Combine(_dir, "tls.crt");
        var keyPath = Path.Combine(_dir, "tls.key");
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certPath, keyPath);
    }

    [Fact]
    public async Task Tls_WorkerTrustingTheCertificate_Trains_AndAnUntrustingClientIsRefused()
    {
        var (certPath, keyPath) = SelfSigned();
        var run = TestRuns.Run(epochs: 1);
        var expected = await TestRuns.SingleProcessAsync(TestRuns.Run(epochs: 1));
        using var eval = new ManagedBackend(1);
        var grain = new CoordinatorGrain(run, new ClusterOptions { MinWorkers = 1 }, eval, NullLogger.Instance);
        var certificate = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        await using var endpoint = await CoordinatorEndpoint.StartAsync(grain, new EndpointOptions { Listen = new Uri("https://127.0.0.1:0"), Certificate = certificate, Token = "tls-token" }, NullLoggerFactory.Instance, run.Model.ParameterCount);
        Assert.Equal("https", endpoint.GrpcAddress.Scheme);

        await using (var untrusting = new GrpcClient(endpoint.GrpcAddress))
        {
            var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => untrusting.UnaryAsync(GrpcProtocol.GetStatusPath, new StatusRequest(), StatusReply.Parser, TimeSpan.FromSeconds(10)));
            Assert.Equal(GrpcStatusCode.Unavailable, ex.Status);
            Assert.Contains("the TLS handshake failed", ex.Message);
        }

        using var worker = new WorkerGrain("tls-worker");
        var host = new SiloHost(new WorkerOptions { Coordinator = endpoint.GrpcAddress, WorkerId = "tls-worker", Token = "tls-token", TrustedCertificate = certPath }, worker, NullLogger.Instance);
        var serving = host.RunAsync(CancellationToken.None);
        await grain.RunAsync(new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
        Assert.Equal(0, await serving.WaitAsync(TimeSpan.FromSeconds(30)));
        TestRuns.AssertClose(expected, run.Model.Parameters, 1e-5);
        Assert.True(host.SamplesComputed > 0);
    }

    [Fact]
    public async Task WorkerWithWrongToken_IsRefusedAndExits_ModelUnchanged()
    {
        var run = TestRuns.Run(epochs: 1);
        var before = (float[])run.Model.Parameters.Clone();
        await using var cluster = await ClusterFixture.StartAsync(run, new ClusterOptions { MinWorkers = 1 });
        cluster.StartWorkerWithToken("intruder", "not-the-token");
        Assert.Equal(3, cluster.WaitForExit("intruder"));
        Assert.Equal(before, run.Model.Parameters);
        Assert.Empty((await cluster.Grain.GetStatusAsync()).Members);
        Assert.True(cluster.Endpoint.Counters.RejectedCalls >= 1);
    }
}
