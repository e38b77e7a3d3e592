using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Streams.ReadModel;

/// <summary>A conversation event the read model does not have yet, with its journal offset (the moderation log's id).</summary>
public sealed record UnprojectedEvent(long Offset, IConversationEvent Event);

/// <summary>
/// Read-your-writes when the projection cannot keep up (its node is gone and the singleton has not moved yet): the
/// conversation's events above the read model's progress mark, read straight from its journal, merged into a page
/// read from the read model. The merge applies the events as the projection would.
/// </summary>
public sealed class JournalTail(ActorSystem system)
{
    // Created on first use: a read journal that failed to start is tried again by the next request.
    private SqlReadJournal Journal => ProjectionRunner.ReadJournal(system);
    private readonly IMaterializer _materializer = system.Materializer();

    /// <summary>The conversation's events with a journal sequence number above <paramref name="projectedMark"/>, in order.</summary>
    public async Task<IReadOnlyList<UnprojectedEvent>> UnprojectedAsync(string tenant, string conversation, long projectedMark, CancellationToken ct)
    {
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, conversation));
        return await Journal.CurrentEventsByPersistenceId(pid, projectedMark + 1, long.MaxValue)
            .Where(e => e.Event is IConversationEvent)
            .Select(e => new UnprojectedEvent(e.Offset is Sequence s ? s.Value : 0, (IConversationEvent)e.Event))
            .RunWith(Sink.Seq<UnprojectedEvent>(), _materializer)
            .WaitAsync(ct);
    }

    /// <summary>
    /// A message page (newest first below <paramref name="before"/>, or oldest first above <paramref name="after"/>) with
    /// the unprojected events applied: new messages added, edits, deletes and reactions applied to the page's rows.
    /// </summary>
    public static IReadOnlyList<MessageRow> MergeMessages(string conversation, IReadOnlyList<MessageRow> page, IReadOnlyList<UnprojectedEvent> events,
        int limit, long? before, long? after)
    {
        var rows = new SortedDictionary<long, MessageRow>(page.ToDictionary(r => r.Seq));
        foreach (var (_, e) in events)
        {
            switch (e)
            {
                case MessagePosted p when !rows.ContainsKey(p.Seq):
                    rows[p.Seq] = new MessageRow(conversation, p.Seq, p.MessageId, p.Meta.ActorId, p.Content.Type, p.Content.Text,
                        p.Meta.OccurredAt, null, false, new Dictionary<string, string[]>(), [],
                        p.Enrichment is null ? null : System.Text.Json.JsonSerializer.SerializeToElement(p.Enrichment, Caas.Actors.Serialization.CaasSerializer.Json),
                        p.Content.Attachment);
                    break;
                default:
                    if (Target(e) is { } seq && rows.TryGetValue(seq, out var row)) rows[seq] = Apply(row, e);
                    break;
            }
        }
        return after is not null
            ? rows.Values.Where(m => m.Seq > after).OrderBy(m => m.Seq).Take(limit).ToList()
            : rows.Values.Where(m => m.Seq < (before ?? long.MaxValue)).OrderByDescending(m => m.Seq).Take(limit).ToList();
    }

    /// <summary>One message row with the unprojected events that change it applied.</summary>
    public static MessageRow MergeMessage(MessageRow row, IReadOnlyList<UnprojectedEvent> events) =>
        events.Where(u => Target(u.Event) == row.Seq).Aggregate(row, (r, u) => Apply(r, u.Event));

    /// <summary>A moderation-log page (newest first, ids below <paramref name="before"/>) with the unprojected actions added.</summary>
    public static IReadOnlyList<ModerationRow> MergeModeration(IReadOnlyList<ModerationRow> page, IReadOnlyList<UnprojectedEvent> events,
        int limit, long? before)
    {
        var actions = events.Select(u => u.Event switch
            {
                UserBanned b => new ModerationRow(u.Offset, "ban", b.Meta.ActorId, b.UserId, b.Until, b.Reason, b.Meta.OccurredAt),
                UserKicked k => new ModerationRow(u.Offset, "kick", k.Meta.ActorId, k.UserId, k.Until, k.Reason, k.Meta.OccurredAt),
                UserUnbanned ub => new ModerationRow(u.Offset, "unban", ub.Meta.ActorId, ub.UserId, null, ub.Reason, ub.Meta.OccurredAt),
                UserMuted mu => new ModerationRow(u.Offset, "mute", mu.Meta.ActorId, mu.UserId, mu.Until, mu.Reason, mu.Meta.OccurredAt),
                UserUnmuted um => new ModerationRow(u.Offset, "unmute", um.Meta.ActorId, um.UserId, null, um.Reason, um.Meta.OccurredAt),
                _ => null,
            })
            .OfType<ModerationRow>()
            .Where(r => r.Id < (before ?? long.MaxValue));
        return page.Concat(actions).DistinctBy(r => r.Id).OrderByDescending(r => r.Id).Take(limit).ToList();
    }

    private static long? Target(IConversationEvent e) => e switch
    {
        MessageEdited m => m.Seq,
        MessageDeleted d => d.Seq,
        ReactionAdded a => a.Seq,
        ReactionRemoved r => r.Seq,
        MessageEnriched en => en.Seq,
        _ => null,
    };

    private static MessageRow Apply(MessageRow row, IConversationEvent e)
    {
        switch (e)
        {
            case MessageEdited ed:
                return row with
                {
                    Text = ed.Content.Text,
                    // An attachment message's edit changes its caption; the file stays (as the projection does).
                    ContentType = row.Attachment is not null && ed.Content.Type == MessageContent.TextType ? row.ContentType : ed.Content.Type,
                    Attachment = ed.Content.Type == Caas.Actors.Privacy.ContentSealing.Erased.Type ? null : ed.Content.Attachment ?? row.Attachment,
                    EditedAt = ed.Meta.OccurredAt,
                    // As the projection does: an erased author's earlier versions go with the erasure.
                    Versions = ed.Content.Type == Caas.Actors.Privacy.ContentSealing.Erased.Type
                        ? [] : [.. row.Versions, new MessageVersion(row.Text, ed.Meta.OccurredAt)],
                };
            case MessageDeleted:
                return row with { Deleted = true, Text = null, ContentType = null, Versions = [], Enrichment = null, Attachment = null };
            case MessageEnriched en when !row.Deleted:
                return row with
                {
                    Enrichment = en.Enrichment is null ? null
                        : System.Text.Json.JsonSerializer.SerializeToElement(en.Enrichment, Caas.Actors.Serialization.CaasSerializer.Json),
                };
            case ReactionAdded a:
            {
                var reactions = new Dictionary<string, string[]>(row.Reactions);
                var users = reactions.GetValueOrDefault(a.Reaction) ?? [];
                if (!users.Contains(a.Meta.ActorId)) reactions[a.Reaction] = [.. users.Append(a.Meta.ActorId).Order(StringComparer.Ordinal)];
                return row with { Reactions = reactions };
            }
            case ReactionRemoved r:
            {
                var reactions = new Dictionary<string, string[]>(row.Reactions);
                if (reactions.TryGetValue(r.Reaction, out var users))
                {
                    var left = users.Where(u => u != r.Meta.ActorId).ToArray();
                    if (left.Length == 0) reactions.Remove(r.Reaction);
                    else reactions[r.Reaction] = left;
                }
                return row with { Reactions = reactions };
            }
            default:
                return row;
        }
    }
}
