using System.Text;
using Caas.Actors.Common;
using Caas.Streams.DeadLetters;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// Records PostgreSQL <c>text</c> cannot hold as they are (a NUL, invalid UTF-8) used to be neither persisted nor
/// dead-lettered: the letter's insert failed and was retried for ever, holding the partition. Each is dead-lettered now.
/// </summary>
[Collection("kafka")]
public sealed class KafkaUnstorableRecordTests
{
    [Fact]
    public async Task Records_with_a_NUL_or_invalid_UTF8_are_dead_lettered_and_the_stream_goes_on()
    {
        const string tenant = "t-kunstorable";
        var name = KafkaTestBroker.NewName("unstorable");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(1, settings.MessagesTopic, settings.DeadLetterTopic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client(tenant, "alice");
        var id = (await CreateConversationsAsync(alice, 1))[0];
        var (control, done) = Run(node, settings, "u1");

        using var producer = new ProducerBuilder<byte[], byte[]>(settings.ProducerConfig()).Build();
        void Send(byte[] value) => producer.Produce(settings.MessagesTopic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(id), Value = value });
        static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
        var content = ",\"content\":{\"type\":\"text\",\"text\":\"x\"}}";
        Send(Utf8(MessageJson(tenant, id, "alice", "ok-1", "before")));
        // A JSON-escaped NUL in sender_id: the ingest refuses it, and the letter must still be stored.
        Send(Utf8($"{{\"tenant_id\":\"{tenant}\",\"conversation_id\":\"{id}\",\"sender_id\":\"alice\\u0000\",\"message_id\":\"nul-1\"" + content));
        // Invalid UTF-8 inside sender_id.
        Send([.. Utf8($"{{\"tenant_id\":\"{tenant}\",\"conversation_id\":\"{id}\",\"sender_id\":\""), 0xC3, 0x28,
            .. Utf8("\",\"message_id\":\"badutf8-1\"" + content)]);
        // Not UTF-8 at all, starting with a raw NUL.
        Send([0x00, 0xFF, 0xFE, 0x80, .. Utf8("garbage-1")]);
        // A JSON string, not an object.
        Send(Utf8("\"just-a-string-1\""));
        // A raw NUL byte inside otherwise valid UTF-8 text.
        Send(Utf8("rawnul-1\u0000{"));
        Send(Utf8(MessageJson(tenant, id, "alice", "ok-2", "after")));
        producer.Flush(TimeSpan.FromSeconds(30));

        var letters = node.Services.GetRequiredService<DeadLetterStore>();
        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitUntilAsync(async () => (await letters.ListAsync(null, 100, null)).Count >= 5, TimeSpan.FromSeconds(90));
        await WaitForMessagesAsync(Opener(store), tenant, 2, TimeSpan.FromSeconds(60));

        var all = await letters.ListAsync(null, 100, null);
        Assert.Equal(5, all.Count);
        static string Raw(DeadLetter l) => l.Payload.StartsWith("base64:", StringComparison.Ordinal)
            ? Encoding.UTF8.GetString(Convert.FromBase64String(l.Payload["base64:".Length..]))
            : l.Payload;
        var nul = Assert.Single(all, l => l.Payload.Contains("nul-1") && !l.Payload.StartsWith("base64:"));
        Assert.Equal(tenant, nul.TenantId);
        Assert.Equal(ErrorCodes.ValidationFailed, nul.Code);
        var badUtf8 = Assert.Single(all, l => Raw(l).Contains("badutf8-1"));
        Assert.Equal(ErrorCodes.MalformedJson, badUtf8.Code);
        Assert.StartsWith("base64:", badUtf8.Payload);
        Assert.Contains("UTF-8", badUtf8.Reason);
        var garbage = Assert.Single(all, l => Raw(l).Contains("garbage-1"));
        Assert.Equal(ErrorCodes.MalformedJson, garbage.Code);
        Assert.StartsWith("base64:", garbage.Payload);
        var text = Assert.Single(all, l => l.Payload == "\"just-a-string-1\"");
        Assert.Equal(ErrorCodes.MalformedJson, text.Code);
        Assert.Contains("not a JSON object", text.Reason);
        var rawNul = Assert.Single(all, l => Raw(l).Contains("rawnul-1"));
        Assert.StartsWith("base64:", rawNul.Payload);
        Assert.Equal(Utf8("rawnul-1\u0000{"), Convert.FromBase64String(rawNul.Payload["base64:".Length..]));

        // None of them was persisted; the messages around them were, and the consumer goes on.
        Send(Utf8(MessageJson(tenant, id, "alice", "ok-3", "still consuming")));
        producer.Flush(TimeSpan.FromSeconds(30));
        await WaitForMessagesAsync(Opener(store), tenant, 3, TimeSpan.FromSeconds(60));
        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
