namespace Caas.Web.Tests.Hubs;

/// <summary>A node whose hub gives up waiting for a persist at once, so every send meets the timeout path.</summary>
public sealed class ImpatientHubNode() : HubNode(new Dictionary<string, string?> { ["PersistTimeout"] = "00:00:00" });

public sealed class PersistTimeoutTests(ImpatientHubNode node) : IClassFixture<ImpatientHubNode>
{
    [Fact]
    public async Task An_unconfirmed_send_answers_persist_timeout_with_its_message_id_and_a_retry_writes_it_once()
    {
        using var rest = node.Rest("t-timeout", "alice");
        var room = await rest.CreateGroupAsync();
        await using var alice = await node.ConnectAsync("t-timeout", "alice");
        await alice.JoinAsync(room);

        var first = await alice.Fails("SendMessage", new { conversation_id = room, content = "slow" }, "persist_timeout");
        var messageId = first.Str("message_id");
        Assert.StartsWith("m_", messageId);
        var failed = await alice.NextAsync("messagePersistFailed");
        Assert.Equal((messageId, "persist_timeout"), (failed.Str("message_id"), failed.GetProperty("error").Str("code")));

        // The message was on its way all along: it arrives, and retrying its id (which times out here too) adds nothing.
        var arrived = (await alice.MessagesAsync(room, 1))[0];
        Assert.Equal((messageId, 1L), (arrived.Str("message_id"), arrived.Seq()));
        await alice.Fails("SendMessage", new { conversation_id = room, content = "slow", message_id = messageId }, "persist_timeout");
        await alice.Fails("SendMessage", new { conversation_id = room, content = "slow", message_id = messageId }, "persist_timeout");
        await alice.Ok("MarkRead", new { conversation_id = room, seq = 1 });
        var history = await alice.Ok("GetHistory", new { conversation_id = room, after_seq = 0 });
        Assert.Equal([messageId], history.GetProperty("items").EnumerateArray().Select(m => m.Str("message_id")).ToArray());
    }
}
