using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Npgsql;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>A node process (<c>caas run</c> with Kafka configured) killed with SIGKILL in the middle of an ingest.</summary>
[Collection("kafka")]
public sealed class KafkaNodeCrashTests
{
    private const string Secret = "kafka-crash-secret-kafka-crash-secret-kafka-crash";

    [Fact]
    public async Task A_node_killed_mid_ingest_and_started_again_persists_every_record_exactly_once()
    {
        const int conversations = 100, perConversation = 100, total = conversations * perConversation;
        var name = KafkaTestBroker.NewName("crash");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(4, settings.MessagesTopic, settings.EventsTopic, settings.DeadLetterTopic);
        var db = TestDatabases.NewPostgresDatabase("kcrash");
        var url = $"http://127.0.0.1:{FreePort()}";
        Func<Task<System.Data.Common.DbConnection>> open = async () =>
        {
            var c = new NpgsqlConnection(db);
            await c.OpenAsync();
            return c;
        };

        var node = await ChildNode.StartAsync(db, settings, url);
        List<string> ids;
        try
        {
            using (var alice = Client(url, "t-kcrash", "alice")) ids = await CreateConversationsAsync(alice, conversations);
            using var producer = KafkaTestBroker.Producer(settings);
            ProduceMessages(producer, settings.MessagesTopic, "t-kcrash", ids, perConversation);

            await WaitUntilAsync(async () =>
            {
                await using var c = await open();
                return await ScalarAsync(c, "SELECT COUNT(*) FROM journal WHERE manifest LIKE 'conv.message-posted.%'") >= total / 5;
            }, TimeSpan.FromSeconds(120));
        }
        finally
        {
            node.Kill();
        }
        await using (var c = await open())
        {
            var atKill = await ScalarAsync(c, "SELECT COUNT(*) FROM journal WHERE manifest LIKE 'conv.message-posted.%'");
            Assert.True(atKill < total, $"the ingest was over ({atKill}) before the kill; nothing was tested");
        }

        // The same node again: its consumer starts from the group's committed offsets and re-reads what was in flight.
        node = await ChildNode.StartAsync(db, settings, url);
        try
        {
            try
            {
                await WaitForMessagesAsync(open, "t-kcrash", total, TimeSpan.FromSeconds(180));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new Exception("the restarted node did not catch up; its output:\n" + node.Output, e);
            }
            await WaitUntilAsync(() => Caas.Streams.Kafka.KafkaConsumerControl.GroupLag(settings, settings.MessagesTopic, TimeSpan.FromSeconds(10)) == 0,
                TimeSpan.FromSeconds(30));
            // A little longer: a late duplicate would show now.
            await Task.Delay(1000);
            await using var c = await open();
            await AssertExactlyOnceInOrderAsync(c, "t-kcrash", ids, perConversation);
        }
        finally
        {
            node.Kill();
        }
    }

    private static HttpClient Client(string url, string tenant, string user)
    {
        var client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            new JwtSettings(Secret, null, null, null).Issue(tenant, user, []));
        return client;
    }

    private static int FreePort() => TestPorts.Free();

    /// <summary><c>dotnet caas.dll run</c> with PostgreSQL and Kafka from its environment.</summary>
    private sealed class ChildNode(Process process, StringBuilder log)
    {
        public static async Task<ChildNode> StartAsync(string postgres, Caas.Streams.Kafka.KafkaSettings kafka, string url)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in (string[])[Path.Combine(AppContext.BaseDirectory, "caas.dll"), "run", "--urls", url]) start.ArgumentList.Add(a);
            foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
                start.Environment.Remove(key);
            start.Environment["CAAS_DATA_DIR"] = TestDatabases.NewSqliteDirectory();
            start.Environment["CAAS_POSTGRES"] = postgres;
            start.Environment["CAAS_JWT_SECRET"] = Secret;
            // Every incarnation has a fresh data directory but the same database: they share the cluster's master key.
            start.Environment["CAAS_MASTER_KEY"] = TestDatabases.MasterKey;
            start.Environment["CAAS_LOG_LEVEL"] = "Warning";
            start.Environment["CAAS_KAFKA_BOOTSTRAP"] = kafka.Bootstrap;
            start.Environment["CAAS_KAFKA_PROFILE"] = "0.9";
            start.Environment["CAAS_KAFKA_GROUP"] = kafka.GroupId;
            start.Environment["CAAS_KAFKA_TOPIC_MESSAGES"] = kafka.MessagesTopic;
            start.Environment["CAAS_KAFKA_TOPIC_EVENTS"] = kafka.EventsTopic;
            start.Environment["CAAS_KAFKA_TOPIC_DLQ"] = kafka.DeadLetterTopic;
            var process = Process.Start(start)!;
            var log = new StringBuilder();
            var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (log) log.AppendLine(e.Data);
                if (e.Data.StartsWith("CAAS is listening on", StringComparison.Ordinal)) listening.TrySetResult();
            };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var started = await Task.WhenAny(listening.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
            var node = new ChildNode(process, log);
            if (started != listening.Task)
            {
                node.Kill();
                lock (log) Assert.Fail($"caas run did not start: {log}");
            }
            return node;
        }

        public string Output
        {
            get { lock (log) return log.ToString(); }
        }

        /// <summary>SIGKILL: no shutdown, no final commit.</summary>
        public void Kill()
        {
            if (process.HasExited) return;
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }
}
