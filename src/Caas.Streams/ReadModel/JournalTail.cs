using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Read-your-writes when the projection cannot keep up (its node is gone and the singleton has not moved yet):
/// the messages the read model lacks, read straight from the conversation's journal events.
/// </summary>
public sealed class JournalTail(ActorSystem system)
{
    private readonly SqlReadJournal _journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
    private readonly IMaterializer _materializer = system.Materializer();

    /// <summary>Messages with a sequence number above <paramref name="projectedSeq"/>, oldest first, with their later edits and deletes.</summary>
    public async Task<IReadOnlyList<MessageRow>> NewerMessagesAsync(string tenant, string conversation, long projectedSeq, CancellationToken ct)
    {
        // Message seq N is at journal position N or later, so reading from projectedSeq + 1 cannot miss one.
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, conversation));
        var events = await _journal.CurrentEventsByPersistenceId(pid, projectedSeq + 1, long.MaxValue)
            .Select(e => e.Event)
            .RunWith(Sink.Seq<object>(), _materializer)
            .WaitAsync(ct);
        var rows = new SortedDictionary<long, MessageRow>();
        foreach (var e in events)
        {
            switch (e)
            {
                case MessagePosted p when p.Seq > projectedSeq:
                    rows[p.Seq] = new MessageRow(conversation, p.Seq, p.MessageId, p.Meta.ActorId, p.Content.Type, p.Content.Text,
                        p.Meta.OccurredAt, null, false, new Dictionary<string, string[]>(), [], null);
                    break;
                case MessageEdited ed when rows.TryGetValue(ed.Seq, out var row):
                    rows[ed.Seq] = row with
                    {
                        Text = ed.Content.Text,
                        EditedAt = ed.Meta.OccurredAt,
                        Versions = [.. row.Versions, new MessageVersion(row.Text, ed.Meta.OccurredAt)],
                    };
                    break;
                case MessageDeleted d when rows.TryGetValue(d.Seq, out var row):
                    rows[d.Seq] = row with { Deleted = true, Text = null, ContentType = null, Versions = [] };
                    break;
            }
        }
        return rows.Values.ToList();
    }
}
