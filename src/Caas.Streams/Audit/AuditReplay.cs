using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Serialization;

namespace Caas.Streams.Audit;

/// <summary>One journal event as an auditor sees it: where it is, what it is, when and by whom, and the event itself.</summary>
public sealed record AuditEvent(string PersistenceId, long Seq, long Offset, string Type, DateTimeOffset Timestamp,
    string ActorId, IDomainEvent Event);

/// <summary>
/// A half-open time window on the events' own <c>occurred_at</c>: <see cref="From"/> inclusive, <see cref="To"/>
/// exclusive; either end may be open.
/// </summary>
public sealed partial record TimeRange(DateTimeOffset? From, DateTimeOffset? To)
{
    public static TimeRange All { get; } = new(null, null);

    public bool Contains(DateTimeOffset t) => (From is null || t >= From) && (To is null || t < To);

    // RFC 3339 date-time: the general parsers also take locale forms ("11/23/2026") that mean different things.
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\z")]
    private static partial Regex Rfc3339();

    public static bool TryParseInstant(string? text, out DateTimeOffset? instant)
    {
        instant = null;
        if (string.IsNullOrEmpty(text)) return true;
        if (!Rfc3339().IsMatch(text)) return false;
        if (!DateTimeOffset.TryParse(text.Replace(' ', 'T'), CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal, out var parsed)) return false;
        instant = parsed;
        return true;
    }
}

/// <summary>
/// Replays the journal for auditors: a conversation's events (by persistence id) or a tenant's (by the tenant tag, in
/// journal order), filtered by the events' own time, page by page (<see cref="AuditJournalReader"/>), so a consumer
/// pulls at its own pace (constant memory) and may stop whenever it likes. The state-at-an-instant fold and the
/// existence check go through the plugin's read journal.
/// </summary>
public sealed class AuditReplay
{
    private readonly ActorSystem _system;
    private readonly AuditJournalReader _reader;

    public AuditReplay(ActorSystem system, StorageOptions storage)
    {
        _system = system;
        _reader = new AuditJournalReader(storage, system);
        Materializer = system.Materializer();
    }

    public IMaterializer Materializer { get; }

    private SqlReadJournal Journal => PersistenceQuery.Get(_system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);

    public static string ConversationPersistenceId(string tenantId, string conversationId) =>
        ConversationActor.PersistenceIdOf(Ids.EntityId(tenantId, conversationId));

    /// <summary>Whether the tenant's conversation has any event at all (another tenant's has none under this id).</summary>
    public async Task<bool> ConversationExistsAsync(string tenantId, string conversationId)
    {
        var first = await Journal.CurrentEventsByPersistenceId(ConversationPersistenceId(tenantId, conversationId), 1, 1)
            .RunWith(Sink.FirstOrDefault<EventEnvelope>(), Materializer);
        return first is not null;
    }

    /// <summary>
    /// The conversation's events in order, a page at a time (a page may be empty when the filters took all of it);
    /// <paramref name="scanned"/> hears of every journal event read, before the filters (progress).
    /// </summary>
    public IAsyncEnumerable<IReadOnlyList<AuditEvent>> ConversationEvents(string tenantId, string conversationId, TimeRange range,
        string? type = null, Action? scanned = null, CancellationToken ct = default) =>
        Filter(_reader.ByPersistenceIdAsync(ConversationPersistenceId(tenantId, conversationId), ct), range, type, scanned);

    /// <summary>Every entity's events of one tenant in journal order; <paramref name="type"/> is a manifest or its stem.</summary>
    public IAsyncEnumerable<IReadOnlyList<AuditEvent>> TenantEvents(string tenantId, TimeRange range, string? type = null,
        Action? scanned = null, CancellationToken ct = default) =>
        Filter(_reader.ByTagAsync(Ids.TenantTag(tenantId), ct), range, type, scanned);

    private static async IAsyncEnumerable<IReadOnlyList<AuditEvent>> Filter(IAsyncEnumerable<IReadOnlyList<AuditJournalReader.Row>> pages,
        TimeRange range, string? type, Action? scanned)
    {
        await foreach (var page in pages)
        {
            var events = new List<AuditEvent>(page.Count);
            foreach (var row in page)
            {
                scanned?.Invoke();
                if (row.Event is not IDomainEvent e) continue;
                var manifest = CaasSerializer.Manifests.TryGetValue(e.GetType(), out var m) ? m : e.GetType().Name;
                if (!range.Contains(e.Meta.OccurredAt) || (type is not null && !TypeMatches(manifest, type))) continue;
                events.Add(new AuditEvent(row.PersistenceId, row.Seq, row.Ordering, manifest, e.Meta.OccurredAt, e.Meta.ActorId, e));
            }
            yield return events;
        }
    }

    /// <summary>The conversation as it stood at <paramref name="at"/>: its events up to then, folded by its own Apply.</summary>
    public Task<ConversationState> ConversationStateAtAsync(string tenantId, string conversationId, DateTimeOffset at) =>
        Journal.CurrentEventsByPersistenceId(ConversationPersistenceId(tenantId, conversationId), 0, long.MaxValue)
            .Where(e => e.Event is IConversationEvent c && c.Meta.OccurredAt <= at)
            .Select(e => (IConversationEvent)e.Event)
            .RunAggregate(ConversationState.Empty(), (state, e) => state.Apply(e), Materializer);

    /// <summary>Known event types: every manifest of an event (current or older), so a filter can be checked.</summary>
    public static bool IsEventType(string type) =>
        CaasSerializer.Manifests.Where(kv => typeof(IDomainEvent).IsAssignableFrom(kv.Key)).Select(kv => kv.Value)
            .Concat(CaasSerializer.Legacy.Keys)
            .Any(m => TypeMatches(m, type));

    /// <summary><c>conv.message-posted</c> matches every version; <c>conv.message-posted.v2</c> only that one.</summary>
    public static bool TypeMatches(string manifest, string type) =>
        manifest == type || (manifest.StartsWith(type, StringComparison.Ordinal) && manifest.AsSpan(type.Length).StartsWith(".v"));

    /// <summary>
    /// Writes one NDJSON line: <c>{persistence_id, seq, type, timestamp, actor, payload}</c>. The payload is the event as
    /// an auditor reads it: the journal's JSON, except that sealed content is shown opened (or as <c>{"type":"erased"}</c>
    /// once its author was erased) instead of as ciphertext; it is serialized straight into the line.
    /// </summary>
    public void WriteLine(IBufferWriter<byte> output, AuditEvent e)
    {
        using (var json = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = CaasSerializer.Json.Encoder }))
        {
            json.WriteStartObject();
            json.WriteString("persistence_id", e.PersistenceId);
            json.WriteNumber("seq", e.Seq);
            json.WriteString("type", e.Type);
            json.WriteString("timestamp", e.Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
            json.WriteString("actor", e.ActorId);
            json.WritePropertyName("payload");
            JsonSerializer.Serialize(json, e.Event, e.Event.GetType(), CaasSerializer.ViewJson);
            json.WriteEndObject();
        }
        output.Write("\n"u8);
    }
}
