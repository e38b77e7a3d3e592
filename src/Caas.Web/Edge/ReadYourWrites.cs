using System.Collections.Concurrent;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Streams.ReadModel;

namespace Caas.Web.Edge;

/// <summary>
/// Read-your-writes for every read of the read model, through one mechanism: the projection's progress mark
/// (<see cref="ProjectionProgress"/>, the journal sequence number applied per entity).
/// <list type="bullet">
/// <item>A read of one conversation (messages, one message, the moderation log; REST and the hub's history) already asks
/// the entity for the caller's access; that answer carries the entity's journal position, so the read waits (capped) for
/// the mark to reach it. This covers the caller's writes made through any node.</item>
/// <item>A read across conversations (the caller's conversation list) waits for the marks of the caller's own recent
/// writes, remembered here, in a bounded map on this web node.</item>
/// </list>
/// Past the cap a conversation read merges the entity's unprojected journal events (<see cref="JournalTail"/>).
/// </summary>
public sealed class ReadYourWrites(ProjectionProgress progress, JournalTail tail, ReadModelQueries queries, EdgeSettings settings)
{
    // Caller → (persistence id → journal seq of the caller's last acknowledged write to it).
    private readonly ConcurrentDictionary<(string Tenant, string User), CallerWrites> _callers = new();

    private sealed class CallerWrites
    {
        public readonly ConcurrentDictionary<string, long> Marks = new(StringComparer.Ordinal);
        public long Touched;
    }

    /// <summary>Remembers an acknowledged write's journal position for the caller's next cross-conversation read.</summary>
    public void Remember(string tenant, string user, string persistenceId, long journalSeq)
    {
        if (journalSeq <= 0) return;
        var writes = _callers.GetOrAdd((tenant, user), _ => new CallerWrites());
        writes.Touched = Environment.TickCount64;
        writes.Marks.AddOrUpdate(persistenceId, journalSeq, (_, old) => Math.Max(old, journalSeq));
        if (writes.Marks.Count > settings.ReadYourWritesEntitiesPerCaller)
            foreach (var key in writes.Marks.Keys.Take(writes.Marks.Count - settings.ReadYourWritesEntitiesPerCaller)) writes.Marks.TryRemove(key, out _);
        if (_callers.Count > settings.ReadYourWritesCallers) Trim();
    }

    /// <summary>Over capacity: the least recently writing tenth of the callers is forgotten (their marks are older than any read's wait).</summary>
    private void Trim()
    {
        var oldest = _callers.OrderBy(kv => kv.Value.Touched).Take(Math.Max(1, _callers.Count / 10)).Select(kv => kv.Key).ToList();
        foreach (var key in oldest) _callers.TryRemove(key, out _);
    }

    /// <summary>
    /// Waits (capped, all at once) until the caller's remembered writes are in the read model; returns the conversations
    /// whose writes are still not in it when the cap ran out (read those from their entities).
    /// </summary>
    public async Task<IReadOnlyList<string>> WaitForCallerAsync(string tenant, string user, CancellationToken ct)
    {
        if (!_callers.TryGetValue((tenant, user), out var writes)) return [];
        var pending = writes.Marks.ToArray();
        var reached = await Task.WhenAll(pending.Select(kv => progress.WaitAsync(kv.Key, kv.Value, settings.ReadYourWritesCap, ct)));
        var lagging = new List<string>();
        for (var i = 0; i < pending.Length; i++)
        {
            var (pid, seq) = pending[i];
            // Once projected, a mark is no longer needed.
            if (reached[i] >= seq) writes.Marks.TryRemove(new KeyValuePair<string, long>(pid, seq));
            else if (pid.StartsWith(ConversationPrefix, StringComparison.Ordinal)) lagging.Add(Ids.SplitEntityId(pid[ConversationPrefix.Length..]).Item2);
        }
        return lagging;
    }

    private static readonly string ConversationPrefix = ConversationActor.PersistenceIdOf(string.Empty);

    /// <summary>
    /// A conversation-list page with the entities' own answers for the conversations the read model still lacks the
    /// caller's writes to: replaced (keeping the read model's last activity, last message and unread count) or added
    /// (a new conversation: its creation is its last activity) when the caller is a member, dropped when not (left,
    /// removed, deleted). The page keeps the list's order: last activity, newest first, then id.
    /// </summary>
    public static IReadOnlyList<ConversationRow> Overlay(IReadOnlyList<ConversationRow> page, IReadOnlyDictionary<string, ConversationView?> fromEntities,
        int limit, (long ActivityMs, string ConversationId)? after)
    {
        var known = page.ToDictionary(r => r.ConversationId);
        var rows = page.Where(r => !fromEntities.ContainsKey(r.ConversationId)).ToList();
        foreach (var (id, view) in fromEntities)
        {
            if (view is null) continue;
            var members = view.Members.Select(m => new MemberRow(m.UserId, m.Role.ToWire(), m.JoinedAt)).ToList();
            var row = known.TryGetValue(id, out var projected)
                ? projected with { Type = view.Type, Title = view.Title, Metadata = view.Metadata, Members = members }
                : new ConversationRow(view.ConversationId, view.Type, view.Title, view.Metadata, view.CreatedAt, view.CreatedBy, view.LastSeq,
                    members, LastActivityAt: view.CreatedAt);
            if (after is { } a && !Before(row, a)) continue;
            rows.Add(row);
        }
        return rows.OrderByDescending(r => r.LastActivityAt.ToUnixTimeMilliseconds())
            .ThenByDescending(r => r.ConversationId, StringComparer.Ordinal).Take(limit).ToList();
    }

    private static bool Before(ConversationRow row, (long ActivityMs, string ConversationId) cursor)
    {
        var at = row.LastActivityAt.ToUnixTimeMilliseconds();
        return at < cursor.ActivityMs || (at == cursor.ActivityMs && string.CompareOrdinal(row.ConversationId, cursor.ConversationId) < 0);
    }

    /// <summary>
    /// Waits until the read model holds the conversation up to <paramref name="access"/>'s journal position; returns the
    /// events it still lacks when the cap ran out (empty when it caught up).
    /// </summary>
    public async Task<IReadOnlyList<UnprojectedEvent>> CatchUpAsync(string tenant, string conversation, ReadAccess access, CancellationToken ct)
    {
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, conversation));
        var mark = await progress.WaitAsync(pid, access.JournalSeq, settings.ReadYourWritesCap, ct);
        return mark >= access.JournalSeq ? [] : await tail.UnprojectedAsync(tenant, conversation, mark, ct);
    }

    /// <summary>A message page as REST's list and the hub's history return it, with every acknowledged write in it.</summary>
    public async Task<IReadOnlyList<MessageRow>> MessagesAsync(string tenant, string conversation, ReadAccess access, int limit, long? before,
        long? after, CancellationToken ct)
    {
        var missing = await CatchUpAsync(tenant, conversation, access, ct);
        var rows = await queries.MessagesAsync(tenant, conversation, limit, before, after, ct);
        return missing.Count == 0 ? rows : JournalTail.MergeMessages(conversation, rows, missing, limit, before, after);
    }

    /// <summary>One message, read after every acknowledged write to its conversation.</summary>
    public async Task<MessageRow> MessageAsync(string tenant, MessageRow found, ReadAccess access, CancellationToken ct)
    {
        var missing = await CatchUpAsync(tenant, found.ConversationId, access, ct);
        var row = await queries.MessageByIdAsync(tenant, found.MessageId, ct) ?? found;
        return missing.Count == 0 ? row : JournalTail.MergeMessage(row, missing);
    }

    /// <summary>A moderation-log page with every acknowledged action in it.</summary>
    public async Task<IReadOnlyList<ModerationRow>> ModerationLogAsync(string tenant, string conversation, ReadAccess access, int limit,
        long? before, CancellationToken ct)
    {
        var missing = await CatchUpAsync(tenant, conversation, access, ct);
        var rows = await queries.ModerationLogAsync(tenant, conversation, limit, before, ct);
        return missing.Count == 0 ? rows : JournalTail.MergeModeration(rows, missing, limit, before);
    }
}
