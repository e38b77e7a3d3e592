using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Akka.Actor;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The media.events projection against the real broker: uploads, deletions and erasures, without bytes or names.</summary>
[Collection("kafka")]
public sealed class MediaEventsProjectionTests
{
    [Fact]
    public async Task Uploads_deletions_and_erasures_reach_media_events_with_the_files_facts_and_neither_bytes_nor_names()
    {
        const string tenant = "t-kmedia";
        var name = KafkaTestBroker.NewName("media");
        var settings = KafkaTestBroker.Settings(name) with { MediaEventsTopic = $"{name}.media" };
        await KafkaTestBroker.CreateTopicsAsync(2, settings.MediaEventsTopic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client(tenant, "alice");
        using var bob = node.Client(tenant, "bob");
        using var admin = node.Client(tenant, "root", "admin");
        var conversation = (await CreateConversationsAsync(alice, 1, "bob"))[0];

        var kept = await UploadAsync(alice, conversation, Png(3000, 1), "holiday secret.png");
        var deleted = await UploadAsync(alice, conversation, Png(2000, 2), "deleted.png");
        var erased = await UploadAsync(bob, conversation, Png(1000, 3), "bob's.png");
        using (var d = await alice.DeleteAsync($"/v1/media/files/{deleted.Id}")) Assert.Equal(204, (int)d.StatusCode);
        using (var e = await admin.DeleteAsync("/v1/admin/users/bob"))
        {
            var body = JsonDocument.Parse(await e.Content.ReadAsStringAsync()).RootElement;
            Assert.True(e.IsSuccessStatusCode, body.ToString());
            Assert.Equal(1, body.GetProperty("files_erased").GetInt32());
        }

        var system = node.Services.GetRequiredService<ActorSystem>();
        using var publisher = new KafkaPublisher(settings, NullLogger.Instance);
        var projection = system.ActorOf(MediaEventsProjection.PropsFor(publisher, new ProjectionOffsetStore(node.Services.GetRequiredService<ReadModelStore>()),
            settings, ProjectionSettings.Default with { MinBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(2) }));

        var config = settings.ConsumerConfig("verify");
        config.GroupId = "verify-" + name;
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(settings.MediaEventsTopic);
        var records = new Dictionary<string, (JsonElement Value, int Partition, string Raw)>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (records.Count < 5 && DateTime.UtcNow < deadline)
        {
            var r = KafkaFixtures.ConsumeNext(consumer);
            if (r is null) continue;
            // Keyed by file and type here: a record's own key ends with the file entity's event seq, and other events of
            // the file (its thumbnail outcome, made off the request path) take seqs in between, in an order of their own.
            var value = JsonDocument.Parse(r.Message.Value).RootElement.Clone();
            Assert.StartsWith($"{tenant}|{value.GetProperty("file_id").GetString()}|", r.Message.Key);
            records[$"{value.GetProperty("file_id").GetString()}|{value.GetProperty("type").GetString()}"] = (value, r.Partition.Value, r.Message.Value);
        }
        await projection.GracefulStop(TimeSpan.FromSeconds(10));
        Assert.Equal(5, records.Count);

        void AssertFacts(JsonElement v, Uploaded file, string type, string owner, string actor)
        {
            Assert.Equal(type, v.GetProperty("type").GetString());
            Assert.Equal(tenant, v.GetProperty("tenant_id").GetString());
            Assert.Equal(file.Id, v.GetProperty("file_id").GetString());
            Assert.Equal(conversation, v.GetProperty("conversation_id").GetString());
            Assert.Equal(owner, v.GetProperty("owner_id").GetString());
            Assert.Equal(actor, v.GetProperty("actor_id").GetString());
            Assert.Equal("image/png", v.GetProperty("content_type").GetString());
            Assert.Equal("image", v.GetProperty("kind").GetString());
            Assert.Equal(file.Size, v.GetProperty("size").GetInt64());
            Assert.Equal(file.Sha256, v.GetProperty("sha256").GetString());
            Assert.True(v.GetProperty("occurred_at").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddHours(-1));
        }
        AssertFacts(records[$"{kept.Id}|uploaded"].Value, kept, "uploaded", "alice", "alice");
        AssertFacts(records[$"{deleted.Id}|uploaded"].Value, deleted, "uploaded", "alice", "alice");
        AssertFacts(records[$"{deleted.Id}|deleted"].Value, deleted, "deleted", "alice", "alice");
        AssertFacts(records[$"{erased.Id}|uploaded"].Value, erased, "uploaded", "bob", "bob");
        AssertFacts(records[$"{erased.Id}|erased"].Value, erased, "erased", "bob", "root");
        // A file's records share a partition (in order); no record carries a file name or any of the bytes.
        Assert.Equal(records[$"{deleted.Id}|uploaded"].Partition, records[$"{deleted.Id}|deleted"].Partition);
        foreach (var (_, (value, _, raw)) in records)
        {
            Assert.False(value.TryGetProperty("file_name", out _));
            foreach (var secret in new[] { "holiday", "deleted.png", "bob's", "iVBOR" }) Assert.DoesNotContain(secret, raw);
        }
    }

    private sealed record Uploaded(string Id, long Size, string Sha256);

    private static byte[] Png(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(bytes, 0);
        return bytes;
    }

    private static async Task<Uploaded> UploadAsync(HttpClient client, string conversation, byte[] bytes, string fileName)
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(conversation), "conversation_id");
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(file, "file", fileName);
        using var response = await client.PostAsync("/v1/media/upload", form);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True((int)response.StatusCode == 201, body.ToString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), body.GetProperty("sha256").GetString());
        return new Uploaded(body.GetProperty("id").GetString()!, bytes.Length, body.GetProperty("sha256").GetString()!);
    }
}
