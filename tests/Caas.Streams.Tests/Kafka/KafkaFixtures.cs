using System.Data.Common;
using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Akka.Streams;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Confluent.Kafka;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

/// <summary>What the Kafka tests share: conversations to write to, records to produce, and read-model checks.</summary>
public static class KafkaFixtures
{
    /// <summary>
    /// The next record within 500 ms, or null. A transient broker error is null too (the 0.9 broker answers offset
    /// queries with an error for a moment after a restart or a new topic): the caller's loop asks again until its deadline.
    /// </summary>
    public static ConsumeResult<string, string>? ConsumeNext(IConsumer<string, string> consumer)
    {
        try
        {
            return consumer.Consume(TimeSpan.FromMilliseconds(500));
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            Thread.Sleep(200);
            return null;
        }
    }

    public static async Task<List<string>> CreateConversationsAsync(HttpClient client, int count, params string[] members)
    {
        var ids = new string[count];
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(client, "/v1/conversations", new { type = "group", members }, ct);
            response.EnsureSuccessStatusCode();
            ids[i] = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("id").GetString()!;
        });
        return [.. ids];
    }

    public static string MessageJson(string tenant, string conversation, string sender, string messageId, string text) =>
        JsonSerializer.Serialize(new
        {
            tenant_id = tenant,
            conversation_id = conversation,
            sender_id = sender,
            message_id = messageId,
            content = new { type = "text", text },
        });

    /// <summary>Produces <paramref name="perConversation"/> messages to each conversation, interleaved; text "n={n}".</summary>
    public static void ProduceMessages(IProducer<string, string> producer, string topic, string tenant, IReadOnlyList<string> conversations,
        int perConversation, string sender = "alice", int from = 0)
    {
        var failed = 0;
        for (var n = from; n < from + perConversation; n++)
            foreach (var c in conversations)
            {
                var value = MessageJson(tenant, c, sender, $"{c}-{n}", $"n={n}");
                while (true)
                {
                    try
                    {
                        producer.Produce(topic, new Message<string, string> { Key = c, Value = value },
                            r => { if (r.Error.IsError) Interlocked.Increment(ref failed); });
                        break;
                    }
                    catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                    {
                        producer.Poll(TimeSpan.FromMilliseconds(50));
                    }
                }
            }
        producer.Flush(TimeSpan.FromSeconds(60));
        Assert.Equal(0, failed);
    }

    public static async Task<long> ScalarAsync(DbConnection c, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    /// <summary>The tenant's message-posted events in the journal (PostgreSQL: readable JSON rows).</summary>
    private static string PostedSql(string tenant, string columns) =>
        $"SELECT {columns} FROM journal WHERE persistence_id LIKE 'conversation|{tenant}|%' AND manifest LIKE 'conv.message-posted.%'";

    /// <summary>Waits until the journal holds <paramref name="expected"/> messages of the tenant.</summary>
    public static async Task WaitForMessagesAsync(Func<Task<DbConnection>> open, string tenant, long expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        long count = 0;
        while (DateTime.UtcNow < deadline)
        {
            await using (var c = await open()) count = await ScalarAsync(c, PostedSql(tenant, "COUNT(*)"));
            if (count >= expected) break;
            await Task.Delay(250);
        }
        Assert.Equal(expected, count);
    }

    /// <summary>
    /// In the journal, every conversation holds exactly messages n = 0..perConversation-1, message n at seq n+1: each
    /// was persisted once (a repeat would take a seq of its own), in order, with no gap.
    /// </summary>
    public static async Task AssertExactlyOnceInOrderAsync(DbConnection c, string tenant, IReadOnlyList<string> conversations, int perConversation)
    {
        await using var cmd = c.CreateCommand();
        // The journal holds the content sealed (encrypted under the sender's data key): the text is checked in the
        // read model, which the projection wrote from the opened events.
        // The read model follows the journal (a projection): wait, bounded, until it holds every message of the tenant.
        var expected = (long)conversations.Count * perConversation;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        long projected;
        while ((projected = await ScalarAsync(c, "SELECT COUNT(*) FROM rm_messages WHERE tenant_id = '" + tenant.Replace("'", "''") + "'")) < expected
               && DateTime.UtcNow < deadline)
            await Task.Delay(250);
        Assert.True(projected >= expected, $"the read model holds {projected} of the tenant's {expected} messages");
        var texts = new Dictionary<string, string>();
        await using (var read = c.CreateCommand())
        {
            read.CommandText = "SELECT message_id, text FROM rm_messages WHERE tenant_id = '" + tenant.Replace("'", "''") + "'";
            await using var r = await read.ExecuteReaderAsync();
            while (await r.ReadAsync()) texts[r.GetString(0)] = r.IsDBNull(1) ? "" : r.GetString(1);
        }
        cmd.CommandText = PostedSql(tenant, "persistence_id, (convert_from(message, 'UTF8')::json->>'seq')::bigint, " +
            "convert_from(message, 'UTF8')::json->>'message_id', convert_from(message, 'UTF8')::json->'sealed'->>'key_id'") +
            " ORDER BY persistence_id, sequence_number";
        var rows = new Dictionary<string, List<(long Seq, string Id, string Text)>>();
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync())
            {
                var conversation = r.GetString(0)[(r.GetString(0).LastIndexOf('|') + 1)..];
                if (!rows.TryGetValue(conversation, out var list)) rows[conversation] = list = [];
                Assert.False(r.IsDBNull(3), "a message's content is stored sealed");
                list.Add((r.GetInt64(1), r.GetString(2), texts.GetValueOrDefault(r.GetString(2), "(not in the read model)")));
            }
        Assert.Equal(conversations.Count, rows.Count);
        foreach (var conversation in conversations)
        {
            var list = rows[conversation];
            Assert.Equal(perConversation, list.Count);
            for (var n = 0; n < perConversation; n++)
            {
                Assert.Equal(n + 1, list[n].Seq);
                Assert.Equal($"{conversation}-{n}", list[n].Id);
                Assert.Equal($"n={n}", list[n].Text);
            }
        }
    }

    public static Func<Task<DbConnection>> Opener(ReadModelStore store) => async () => await store.OpenAsync();

    /// <summary>The node's Kafka ingest stream, submitting to <paramref name="ingest"/> (default: the node's own).</summary>
    public static (KafkaConsumerControl Control, Task Done) Run(PipelineNode node, KafkaSettings settings, string clientId, IMessageIngest? ingest = null)
    {
        var system = node.Services.GetRequiredService<ActorSystem>();
        return KafkaIngest.Run(settings, ingest ?? node.Ingest, node.Services.GetRequiredService<DeadLetterStore>(), system.Materializer(),
            node.Services.GetRequiredService<ILoggerFactory>().CreateLogger("kafka-test-" + clientId), clientId);
    }

    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout) => WaitUntilAsync(() => Task.FromResult(condition()), timeout);

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not within {timeout}");
            await Task.Delay(200);
        }
    }
}
