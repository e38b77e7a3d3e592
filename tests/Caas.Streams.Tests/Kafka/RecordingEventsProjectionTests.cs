using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Streams.Calls;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static Caas.Streams.Tests.Kafka.KafkaFixtures;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The webrtc.recording.events projection against the real broker: every recording event of a call, keyed per recording, in order.</summary>
[Collection("kafka")]
public sealed class RecordingEventsProjectionTests
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_recordings_requests_consents_start_stop_file_deletion_and_a_refusal_reach_webrtc_recording_events()
    {
        const string tenant = "t-krec";
        var name = KafkaTestBroker.NewName("recording");
        var settings = KafkaTestBroker.Settings(name);
        var topic = $"{name}.recordings";
        await KafkaTestBroker.CreateTopicsAsync(2, topic);
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client(tenant, "alice");
        var conversation = (await CreateConversationsAsync(alice, 1, "bob"))[0];
        var calls = node.Services.GetRequiredService<IRequiredActor<CallRoomRegion>>().ActorRef;
        async Task<object> Ask(ICallCommand command)
        {
            var reply = await calls.Ask<object>(command, AskTimeout);
            Assert.False(reply is Rejection, $"{command.GetType().Name}: {reply}");
            return reply;
        }

        var call = CallIds.New(conversation);
        var kept = RecordingIds.New();
        var refused = RecordingIds.New();
        await Ask(new StartCall(tenant, conversation, "alice", call, "audio", ["alice", "bob"]));
        await Ask(new AcceptCall(tenant, conversation, "bob", call));
        await Ask(new RequestRecording(tenant, conversation, "alice", call, kept));
        await Ask(new ConsentRecording(tenant, conversation, "bob", call, kept, true));
        await Ask(new StopRecording(tenant, conversation, "alice", call, Role.Member));
        await Ask(new AttachRecording(tenant, conversation, "alice", kept,
            new RecordingFile("f-krec", "private name.webm", "video/webm", 4321, new string('c', 64), "file:t-krec/f-krec")));
        await Ask(new DeleteRecording(tenant, conversation, "root", kept, "admin"));
        await Ask(new RequestRecording(tenant, conversation, "bob", call, refused));
        await Ask(new ConsentRecording(tenant, conversation, "alice", call, refused, false));

        var system = node.Services.GetRequiredService<ActorSystem>();
        using var publisher = new KafkaPublisher(settings, NullLogger.Instance);
        var projection = system.ActorOf(RecordingEventsProjection.PropsFor(publisher, new ProjectionOffsetStore(node.Services.GetRequiredService<ReadModelStore>()),
            settings, topic, ProjectionSettings.Default with { MinBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(2) }));

        var config = settings.ConsumerConfig("verify");
        config.GroupId = "verify-" + name;
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        var records = new List<(string Key, JsonElement Value, int Partition)>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (records.Count < 10 && DateTime.UtcNow < deadline)
        {
            var r = KafkaFixtures.ConsumeNext(consumer);
            if (r is null) continue;
            records.Add((r.Message.Key, JsonDocument.Parse(r.Message.Value).RootElement.Clone(), r.Partition.Value));
            Assert.DoesNotContain("private name", r.Message.Value);
        }
        await projection.GracefulStop(TimeSpan.FromSeconds(10));

        List<string> Types(string recording) =>
            [.. records.Where(r => r.Value.GetProperty("recording_id").GetString() == recording).Select(r => r.Value.GetProperty("type").GetString()!)];
        Assert.Equal(["requested", "consented", "started", "stopped", "stored", "deleted"], Types(kept));
        Assert.Equal(["requested", "consented", "declined"], Types(refused));
        foreach (var (key, value, _) in records)
        {
            Assert.Equal((tenant, call, conversation), (value.GetProperty("tenant_id").GetString(), value.GetProperty("call_id").GetString(),
                value.GetProperty("conversation_id").GetString()));
            Assert.Equal($"{tenant}|{value.GetProperty("recording_id").GetString()}|{value.GetProperty("seq").GetInt64()}", key);
        }
        // A recording's records share a partition, so they arrive in order.
        Assert.Single(records.Where(r => r.Value.GetProperty("recording_id").GetString() == kept).Select(r => r.Partition).Distinct());
        var stored = records.Single(r => r.Value.GetProperty("type").GetString() == "stored").Value.GetProperty("file");
        Assert.Equal((4321L, "video/webm"), (stored.GetProperty("size").GetInt64(), stored.GetProperty("content_type").GetString()));
        var refusal = records.Single(r => r.Value.GetProperty("type").GetString() == "consented" && r.Value.GetProperty("recording_id").GetString() == refused).Value;
        Assert.Equal(("alice", false), (refusal.GetProperty("user_id").GetString(), refusal.GetProperty("consent").GetBoolean()));
        var deletion = records.Single(r => r.Value.GetProperty("type").GetString() == "deleted").Value;
        Assert.Equal(("root", "admin"), (deletion.GetProperty("actor_id").GetString(), deletion.GetProperty("reason").GetString()));
    }
}
