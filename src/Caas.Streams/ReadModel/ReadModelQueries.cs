using System.Data.Common;
using System.Text.Json;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.ReadModel;

public sealed record MemberRow(string UserId, string Role, DateTimeOffset JoinedAt);

/// <summary>
/// A conversation as the list shows it: <see cref="LastActivityAt"/> is its last message's time (its creation's when it
/// has none), <see cref="UnreadCount"/> counts others' live messages after the reader's marker.
/// </summary>
public sealed record ConversationRow(string ConversationId, string Type, string? Title, IReadOnlyDictionary<string, string> Metadata,
    DateTimeOffset CreatedAt, string CreatedBy, long LastSeq, IReadOnlyList<MemberRow> Members,
    DateTimeOffset LastActivityAt = default, MessageRow? LastMessage = null, long UnreadCount = 0);

public sealed record MessageRow(string ConversationId, long Seq, string MessageId, string SenderId, string? ContentType, string? Text,
    DateTimeOffset CreatedAt, DateTimeOffset? EditedAt, bool Deleted, IReadOnlyDictionary<string, string[]> Reactions,
    IReadOnlyList<MessageVersion> Versions, System.Text.Json.JsonElement? Enrichment, MessageAttachment? Attachment = null)
{
    /// <summary>The row's content as the API shows it (null once deleted): text, or an attachment with its caption.</summary>
    public MessageContent? Content => Deleted ? null : new MessageContent(ContentType ?? "text", Text) { Attachment = Attachment };
}

/// <summary>A message's attachment in the read model's <c>attachment</c> column: <c>{media_id, media}</c> as JSON.</summary>
public static class AttachmentColumn
{
    public static string? Write(MessageAttachment? a) => a is null ? null : JsonSerializer.Serialize(a, CaasSerializer.Json);

    public static MessageAttachment? Read(string? json) => json is null ? null : JsonSerializer.Deserialize<MessageAttachment>(json, CaasSerializer.Json);
}

public sealed record ModerationRow(long Id, string Action, string ActorId, string UserId, DateTimeOffset? Until, string? Reason,
    DateTimeOffset OccurredAt);

/// <summary>The list queries of the API. Every query is scoped by tenant.</summary>
public sealed class ReadModelQueries(ReadModelStore store, Operational.OperationalStore? operational = null)
{
    /// <summary>The breaker of the store these queries read (the edge asks it whether the database is down).</summary>
    public StoreBreaker Breaker => store.Breaker;

    /// <summary>The caller's live conversations, ordered by id, after <paramref name="afterId"/>.</summary>
    /// <summary>
    /// A user's conversations, most recent activity first (ties by id, descending); <paramref name="after"/> is the
    /// last row of the previous page. <paramref name="readMarkers"/> are the user's (from their session).
    /// </summary>
    public async Task<IReadOnlyList<ConversationRow>> ConversationsOfAsync(string tenant, string user, int limit,
        (long ActivityMs, string ConversationId)? after, IReadOnlyDictionary<string, long> readMarkers, CancellationToken ct = default)
    {
        const string activity = "COALESCE(lm.created_at, v.created_at)";
        await using var c = await store.OpenAsync(ct);
        var rows = new List<ConversationRow>();
        await using (var cmd = Command(c, null,
                         "SELECT v.conversation_id, v.type, v.title, v.metadata, v.created_at, v.created_by, v.last_seq, " + activity + " AS activity " +
                         "FROM rm_memberships m JOIN rm_conversations v ON v.tenant_id = m.tenant_id AND v.conversation_id = m.conversation_id " +
                         "LEFT JOIN rm_messages lm ON lm.tenant_id = v.tenant_id AND lm.conversation_id = v.conversation_id AND lm.seq = v.last_seq " +
                         "WHERE m.tenant_id = @t AND m.user_id = @u AND v.deleted = 0 " +
                         "AND (@paged = 0 OR " + activity + " < @at OR (" + activity + " = @at AND v.conversation_id < @after)) " +
                         "ORDER BY activity DESC, v.conversation_id DESC LIMIT @n",
                         ("t", tenant), ("u", user), ("paged", after is null ? 0 : 1), ("at", after?.ActivityMs ?? 0L),
                         ("after", after?.ConversationId ?? string.Empty), ("n", limit)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct))
                rows.Add(new ConversationRow(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2),
                    JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(3)) ?? new(), Ms(r.GetInt64(4)), r.GetString(5),
                    r.GetInt64(6), [], Ms(r.GetInt64(7))));
        }
        var result = new List<ConversationRow>(rows.Count);
        foreach (var row in rows)
        {
            MessageRow? last = null;
            if (row.LastSeq > 0)
            {
                await using var lastCmd = Command(c, null, MessageColumns + "WHERE tenant_id = @t AND conversation_id = @c AND seq = @s",
                    ("t", tenant), ("c", row.ConversationId), ("s", row.LastSeq));
                last = (await ReadMessagesAsync(lastCmd, ct)).FirstOrDefault();
            }
            await using var unread = Command(c, null,
                "SELECT COUNT(*) FROM rm_messages WHERE tenant_id = @t AND conversation_id = @c AND seq > @marker AND sender_id <> @u AND deleted = 0",
                ("t", tenant), ("c", row.ConversationId), ("marker", readMarkers.GetValueOrDefault(row.ConversationId)), ("u", user));
            var count = Convert.ToInt64(await unread.ExecuteScalarAsync(ct));
            result.Add(row with { Members = await MembersAsync(c, tenant, row.ConversationId, ct), LastMessage = last, UnreadCount = count });
        }
        return result;
    }

    private static async Task<IReadOnlyList<MemberRow>> MembersAsync(DbConnection c, string tenant, string conversation, CancellationToken ct)
    {
        var members = new List<MemberRow>();
        await using var cmd = Command(c, null,
            "SELECT user_id, role, joined_at FROM rm_memberships WHERE tenant_id = @t AND conversation_id = @c ORDER BY joined_at, user_id",
            ("t", tenant), ("c", conversation));
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) members.Add(new MemberRow(r.GetString(0), r.GetString(1), Ms(r.GetInt64(2))));
        return members;
    }

    /// <summary>Newest first below <paramref name="beforeSeq"/>, or oldest first above <paramref name="afterSeq"/> (catch-up).</summary>
    public async Task<IReadOnlyList<MessageRow>> MessagesAsync(string tenant, string conversation, int limit, long? beforeSeq, long? afterSeq,
        CancellationToken ct = default)
    {
        var sql = afterSeq is not null
            ? "AND seq > @s ORDER BY seq ASC"
            : "AND seq < @s ORDER BY seq DESC";
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, MessageColumns + "WHERE tenant_id = @t AND conversation_id = @c " + sql + " LIMIT @n",
            ("t", tenant), ("c", conversation), ("s", afterSeq ?? beforeSeq ?? long.MaxValue), ("n", limit));
        return await ReadMessagesAsync(cmd, ct);
    }

    public async Task<MessageRow?> MessageByIdAsync(string tenant, string messageId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, MessageColumns + "WHERE tenant_id = @t AND message_id = @m ORDER BY created_at, seq LIMIT 1",
            ("t", tenant), ("m", messageId));
        return (await ReadMessagesAsync(cmd, ct)).FirstOrDefault();
    }

    /// <summary>
    /// The conversation a message id was claimed for (the pipeline claims an id before the entity persists it), or
    /// null: where a message not yet projected would be found. The claims are in the operational store.
    /// </summary>
    public async Task<string?> ClaimedConversationAsync(string tenant, string messageId, CancellationToken ct = default)
    {
        if (operational is null) throw new InvalidOperationException("These queries were built without the operational store, where the claims are.");
        await using var c = await operational.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT conversation_id FROM message_id_claims WHERE tenant_id = @t AND message_id = @m",
            ("t", tenant), ("m", messageId));
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    /// <summary>The highest sequence number the read model holds for a conversation (0 when none).</summary>
    public async Task<long> ProjectedSeqAsync(string tenant, string conversation, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT last_seq FROM rm_conversations WHERE tenant_id = @t AND conversation_id = @c",
            ("t", tenant), ("c", conversation));
        return await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v) : 0L;
    }

    public async Task<IReadOnlyList<ModerationRow>> ModerationLogAsync(string tenant, string conversation, int limit, long? beforeId,
        CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT journal_offset, action, actor_id, user_id, until_at, reason, occurred_at FROM rm_moderation_log " +
            "WHERE tenant_id = @t AND conversation_id = @c AND journal_offset < @b ORDER BY journal_offset DESC LIMIT @n",
            ("t", tenant), ("c", conversation), ("b", beforeId ?? long.MaxValue), ("n", limit));
        var rows = new List<ModerationRow>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            rows.Add(new ModerationRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3),
                r.IsDBNull(4) ? null : Ms(r.GetInt64(4)), r.IsDBNull(5) ? null : r.GetString(5), Ms(r.GetInt64(6))));
        return rows;
    }

    private const string MessageColumns =
        "SELECT conversation_id, seq, message_id, sender_id, content_type, text, created_at, edited_at, deleted, reactions, versions, enrichment, attachment FROM rm_messages ";

    private static async Task<IReadOnlyList<MessageRow>> ReadMessagesAsync(DbCommand cmd, CancellationToken ct)
    {
        var rows = new List<MessageRow>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            rows.Add(new MessageRow(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4),
                r.IsDBNull(5) ? null : r.GetString(5), Ms(r.GetInt64(6)), r.IsDBNull(7) ? null : Ms(r.GetInt64(7)), r.GetInt64(8) != 0,
                JsonSerializer.Deserialize<Dictionary<string, string[]>>(r.GetString(9)) ?? new(),
                JsonSerializer.Deserialize<List<MessageVersion>>(r.GetString(10), CaasSerializer.Json) ?? [],
                r.IsDBNull(11) ? null : JsonDocument.Parse(r.GetString(11)).RootElement.Clone(),
                AttachmentColumn.Read(r.IsDBNull(12) ? null : r.GetString(12))));
        return rows;
    }

    private static DateTimeOffset Ms(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
}
