using System.Net.Http.Headers;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Streams.DeadLetters;
using Caas.Streams.Media;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// Attachment messages from <c>chat.messages</c> (the real broker, PostgreSQL, the file store): a record naming a file of
/// its conversation is stored with the file's metadata; one naming another conversation's file, or an upload not yet
/// complete, is dead-lettered with the code REST answers (404, 409), and the stream goes on.
/// </summary>
[Collection("kafka")]
public sealed class KafkaAttachmentTests
{
    private static async Task<JsonElement> PostJsonAsync(HttpClient c, string path, HttpContent content)
    {
        using var response = await c.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<string> UploadPngAsync(HttpClient c, string conversation, int size)
    {
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(bytes, 0);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(conversation), "conversation_id");
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(file, "file", "k.png");
        return (await PostJsonAsync(c, "/v1/media/upload", form)).GetProperty("id").GetString()!;
    }

    private static string Record(string tenant, string conversation, string messageId, object content) =>
        JsonSerializer.Serialize(new { tenant_id = tenant, conversation_id = conversation, sender_id = "alice", message_id = messageId, content });

    [Fact]
    public async Task Attachment_records_are_stored_with_metadata_and_bad_ones_dead_lettered_with_their_codes()
    {
        const string tenant = "t-kattach";
        var name = KafkaTestBroker.NewName("attach");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(1, settings.MessagesTopic, settings.DeadLetterTopic);
        var root = Path.Combine(Path.GetTempPath(), "caas-kafka-attach-" + Guid.NewGuid().ToString("N"));
        await using var node = await PipelineNode.StartAsync("", services => services.AddSingleton<IMediaStore>(new FileMediaStore(root)));
        using var alice = node.Client(tenant, "alice");
        var ids = await CreateConversationsAsync(alice, 2);
        var (conv, other) = (ids[0], ids[1]);
        var mine = await UploadPngAsync(alice, conv, 2_000);
        var elsewhere = await UploadPngAsync(alice, other, 1_000);
        using var start = new StringContent(JsonSerializer.Serialize(new { file_name = "later.png", size = 3000, content_type = "image/png", conversation_id = conv }),
            System.Text.Encoding.UTF8, "application/json");
        var upload = (await PostJsonAsync(alice, "/v1/media/upload/chunk", start)).GetProperty("upload_id").GetString()!;
        var (control, done) = Run(node, settings, "a1");

        using var producer = KafkaTestBroker.Producer(settings);
        void Send(string value) => producer.Produce(settings.MessagesTopic, new Message<string, string> { Key = conv, Value = value });
        Send(Record(tenant, conv, "k-att-1", new { type = "image", media_id = mine, caption = "from kafka" }));
        Send(Record(tenant, conv, "k-att-2", new { type = "image", media_id = elsewhere }));
        Send(Record(tenant, conv, "k-att-3", new { type = "image", media_id = upload }));
        Send(Record(tenant, conv, "k-att-4", new { type = "image" }));
        Send(Record(tenant, conv, "k-att-5", new { type = "text", text = "after" }));
        producer.Flush(TimeSpan.FromSeconds(30));

        var letters = node.Services.GetRequiredService<DeadLetterStore>();
        await WaitUntilAsync(async () => (await letters.ListAsync(null, 100, null)).Count >= 3, TimeSpan.FromSeconds(90));
        await WaitForMessagesAsync(Opener(node.Services.GetRequiredService<ReadModelStore>()), tenant, 2, TimeSpan.FromSeconds(90));

        var all = await letters.ListAsync(null, 100, null);
        Assert.Equal(3, all.Count);
        Assert.Equal(ErrorCodes.NotFound, Assert.Single(all, l => l.Payload.Contains("k-att-2")).Code);
        Assert.Equal(ErrorCodes.Conflict, Assert.Single(all, l => l.Payload.Contains("k-att-3")).Code);
        Assert.Equal(ErrorCodes.ValidationFailed, Assert.Single(all, l => l.Payload.Contains("k-att-4")).Code);

        async Task<JsonElement> PageAsync() =>
            JsonDocument.Parse(await alice.GetStringAsync($"/v1/messages/conversations/{conv}?limit=10")).RootElement.GetProperty("items").Clone();
        await WaitUntilAsync(async () => (await PageAsync()).GetArrayLength() >= 2, TimeSpan.FromSeconds(60));
        var page = await PageAsync();
        Assert.Equal(["k-att-1", "k-att-5"], page.EnumerateArray().Select(m => m.GetProperty("message_id").GetString()).Order(StringComparer.Ordinal));
        var attached = page.EnumerateArray().Single(m => m.GetProperty("message_id").GetString() == "k-att-1").GetProperty("content");
        Assert.Equal(("image", mine, "from kafka"), (attached.GetProperty("type").GetString(), attached.GetProperty("media_id").GetString(),
            attached.GetProperty("caption").GetString()));
        Assert.Equal(("k.png", 2_000L), (attached.GetProperty("media").GetProperty("file_name").GetString(),
            attached.GetProperty("media").GetProperty("size").GetInt64()));

        await control.StopAsync();
        await done.WaitAsync(TimeSpan.FromSeconds(30));
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }
}
