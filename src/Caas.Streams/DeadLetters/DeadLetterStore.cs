using System.Text.Json;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Serialization;
using Caas.Streams.Kafka;
using Caas.Streams.Pipeline;
using Caas.Streams.Operational;
using Caas.Streams.ReadModel;
using Prometheus;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.DeadLetters;

/// <summary>
/// A message that failed for a reason retrying cannot fix (not JSON, a schema violation, a tenant not allowed on
/// the topic, a rejection with nobody to tell), kept with its reason so an operator can read and replay it.
/// <see cref="TenantId"/> is null when the payload named no readable tenant: only the operator role sees those.
/// </summary>
public sealed record DeadLetter(string Id, string? TenantId, string Source, string Code, string Reason, string Payload,
    DateTimeOffset CreatedAt, DateTimeOffset? ReplayedAt, string? ReplayOutcome, string? Topic = null);

/// <summary>The dead-letter table (and, where configured, a publisher such as the <c>chat.dlq</c> topic).</summary>
public sealed class DeadLetterStore(OperationalStore store)
{
    private static readonly Counter Count = Metrics.CreateCounter("caas_dead_letters_total", "Messages dead-lettered, by source and code.",
        "source", "code");

    /// <summary>Called after a dead letter is stored (the Kafka sink publishes it to <c>chat.dlq</c>).</summary>
    public Func<DeadLetter, Task>? Publisher { get; set; }

    /// <param name="topic">the Kafka topic the record came from (replay checks that topic's tenant allowlist)</param>
    public async Task<DeadLetter> AddAsync(string? tenantId, IngestSource source, string code, string reason, string payload,
        string? topic = null, CancellationToken ct = default)
    {
        var letter = new DeadLetter("dl_" + OrderedIds.NewUuid7(), tenantId, source.ToString().ToLowerInvariant(), code, reason,
            payload, DateTimeOffset.UtcNow, null, null, topic);
        await using (var c = await store.OpenAsync(ct))
        await using (var cmd = Command(c, null,
                         "INSERT INTO dead_letters (id, tenant_id, sender_id, source, code, reason, payload, created_at, topic) VALUES (@id, @t, @sender, @s, @code, @reason, @p, @at, @topic)",
                         ("id", letter.Id), ("t", Storable(tenantId)), ("sender", SenderOf(payload)), ("s", letter.Source), ("code", code),
                         ("reason", Storable(reason)), ("p", Storable(payload)),
                         ("topic", topic),
                         ("at", letter.CreatedAt.ToUnixTimeMilliseconds())))
            await cmd.ExecuteNonQueryAsync(ct);
        Count.WithLabels(letter.Source, code).Inc();
        if (Publisher is { } publish) await publish(letter);
        return letter;
    }

    /// <summary>
    /// Text PostgreSQL can store: a NUL or a lone surrogate (bad input quoted in a reason, or a JSON-escaped id) becomes
    /// U+FFFD. Raw record values never rely on this: they are kept as base64 when they are not storable as they are.
    /// </summary>
    private static string? Storable(string? text) =>
        text is null ? null : System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(text)).Replace('\0', '\uFFFD');

    /// <summary>
    /// The payload's <c>sender_id</c> when it is JSON that names a valid user id: an erasure scrubs that user's
    /// letters, and no user has an invalid id.
    /// </summary>
    private static string? SenderOf(string payload)
    {
        try
        {
            using var doc = JsonDocument.Parse(payload);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("sender_id", out var s)
                                                                   && s.ValueKind == JsonValueKind.String
                                                                   && s.GetString() is var sender && Ids.IsValid(sender)
                ? sender
                : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>A tenant's dead letters, newest first; <paramref name="tenantId"/> null lists every tenant's and the unreadable ones.</summary>
    public async Task<IReadOnlyList<DeadLetter>> ListAsync(string? tenantId, int limit, string? beforeId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT id, tenant_id, source, code, reason, payload, created_at, replayed_at, replay_outcome, topic FROM dead_letters " +
            "WHERE (@all = 1 OR tenant_id = @t) AND id < @before ORDER BY id DESC LIMIT @n",
            ("all", tenantId is null ? 1 : 0), ("t", tenantId ?? string.Empty), ("before", beforeId ?? "dl_~"), ("n", limit));
        return await ReadAsync(cmd, ct);
    }

    public async Task<DeadLetter?> GetAsync(string id, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null,
            "SELECT id, tenant_id, source, code, reason, payload, created_at, replayed_at, replay_outcome, topic FROM dead_letters WHERE id = @id",
            ("id", id));
        return (await ReadAsync(cmd, ct)).FirstOrDefault();
    }

    public async Task MarkReplayedAsync(string id, string outcome, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "UPDATE dead_letters SET replayed_at = @at, replay_outcome = @o WHERE id = @id",
            ("id", id), ("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("o", outcome));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The payload of a dead letter that came from a message the pipeline could read.</summary>
    public static string PayloadOf(IngestMessage m) => JsonSerializer.Serialize(new StoredMessage(m.TenantId, m.ConversationId, m.SenderId,
        m.MessageId, m.Content), CaasSerializer.Json);

    /// <summary>Reads a payload back into a message for replay; null when it was not a readable message.</summary>
    public static IngestMessage? MessageOf(DeadLetter letter)
    {
        try
        {
            var s = JsonSerializer.Deserialize<StoredMessage>(letter.Payload, CaasSerializer.Json);
            if (s?.TenantId is null || s.ConversationId is null || s.SenderId is null || s.Content is null) return null;
            var source = Enum.TryParse<IngestSource>(letter.Source, ignoreCase: true, out var parsed) ? parsed : IngestSource.Kafka;
            return new IngestMessage(s.TenantId, s.ConversationId, s.SenderId, s.MessageId, s.Content, source);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The message a replay submits, after every check its original path made before the pipeline (which then makes
    /// the rest): a Kafka letter is read again as a record of its topic (shape, and the topic's tenant allowlist as
    /// configured now; letters stored before topics were kept count as the messages topic's). Null with the refusal
    /// when it fails them, or null with none when it is not a readable message at all.
    /// </summary>
    public static (IngestMessage? Message, Rejection? Refusal) ForReplay(DeadLetter letter, KafkaSettings kafka)
    {
        if (!letter.Source.Equals(nameof(IngestSource.Kafka), StringComparison.OrdinalIgnoreCase)) return (MessageOf(letter), null);
        var read = ChatMessageRecord.Read(letter.Topic ?? kafka.MessagesTopic, null, System.Text.Encoding.UTF8.GetBytes(letter.Payload), kafka);
        if (read.Message is { } message)
            return message.TenantId == letter.TenantId
                ? (message, null)
                : (null, Rejection.Forbidden("The payload names another tenant than the dead letter."));
        return read.Code == ErrorCodes.Forbidden ? (null, Rejection.Forbidden(read.Reason!)) : (null, null);
    }

    private sealed record StoredMessage(string? TenantId, string? ConversationId, string? SenderId, string? MessageId, MessageContent? Content);

    private static async Task<IReadOnlyList<DeadLetter>> ReadAsync(System.Data.Common.DbCommand cmd, CancellationToken ct)
    {
        var list = new List<DeadLetter>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new DeadLetter(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4),
                r.GetString(5), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)),
                r.IsDBNull(7) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)), r.IsDBNull(8) ? null : r.GetString(8),
                r.IsDBNull(9) ? null : r.GetString(9)));
        return list;
    }
}
