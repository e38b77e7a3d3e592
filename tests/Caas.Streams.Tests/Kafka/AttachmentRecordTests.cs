using Caas.Actors.Conversations;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Tests.Kafka;

/// <summary>
/// A <c>chat.messages</c> record with an attachment reads as the same content REST and bulk read (the pipeline's attach
/// stage then decides it for all of them), and a dead letter's payload keeps the attachment for a replay.
/// </summary>
public sealed class AttachmentRecordTests
{
    private static readonly KafkaSettings Settings = new() { Bootstrap = "unused:9092" };

    private static ChatMessageRecord Read(string value) =>
        ChatMessageRecord.Read("chat.messages", null, System.Text.Encoding.UTF8.GetBytes(value), Settings);

    [Fact]
    public void An_attachment_record_reads_its_media_id_and_caption()
    {
        var r = Read("""{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":{"type":"image","media_id":"f_1","caption":"look"}}""");
        var content = r.Message!.Content;
        Assert.Equal(("image", "look", "f_1"), (content.Type, content.Text, content.Attachment!.MediaId));
        Assert.Null(content.Attachment.Media);

        var bare = Read("""{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m2","content":{"type":"video","media_id":"f_2"}}""");
        Assert.Equal(("video", null, "f_2"), (bare.Message!.Content.Type, bare.Message.Content.Text, bare.Message.Content.Attachment!.MediaId));
    }

    [Fact]
    public void Malformed_attachments_are_refused_by_validation_with_a_stable_code()
    {
        foreach (var content in new[] { """{"type":"image"}""", """{"type":"image","media_id":5}""", """{"type":"file","media_id":"a b"}""" })
        {
            var r = Read($$"""{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":{{content}}}""");
            var refused = Validation.Check(r.Message!, Caas.Actors.Tenants.TenantSettingsState.Default);
            Assert.Equal("validation_failed", refused?.Code);
            Assert.True(refused!.Errors!.ContainsKey("content.media_id"), content);
        }
        var ok = Read("""{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":{"type":"file","media_id":"f_1"}}""");
        Assert.Null(Validation.Check(ok.Message!, Caas.Actors.Tenants.TenantSettingsState.Default));
    }

    [Fact]
    public void A_dead_letter_payload_keeps_the_attachment_for_a_replay()
    {
        var message = new IngestMessage("t-a", "c1", "u1", "m1", new MessageContent("audio", "voice note") { Attachment = new MessageAttachment("f_9") },
            IngestSource.Bulk);
        var payload = DeadLetterStore.PayloadOf(message);
        var back = DeadLetterStore.MessageOf(new DeadLetter("d1", "t-a", "bulk", "not_found", "gone", payload, DateTimeOffset.UtcNow, null, null));
        Assert.Equal(message, back);
        // A text body is written as before: no attachment field at all.
        Assert.DoesNotContain("attachment", DeadLetterStore.PayloadOf(message with { Content = new MessageContent("text", "hi") }));
    }
}
