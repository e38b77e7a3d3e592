using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

/// <summary>The conversation as a member sees it.</summary>
public sealed record ConversationView(string ConversationId, string Type, string? Title,
    ImmutableDictionary<string, string> Metadata, ImmutableArray<Member> Members, DateTimeOffset CreatedAt,
    string CreatedBy, long LastSeq) : ICaasMessage
{
    public static ConversationView Of(ConversationState s) => new(s.ConversationId, s.Type, s.Title, s.Metadata,
        SortedMembers(s.Members), s.CreatedAt, s.CreatedBy, s.LastSeq);

    // The sorted member list of each membership (the state's immutable dictionary) is made once: a room of 1,000 that
    // everyone joins live asked for it 1,000 times, and sorting it was a tenth of the node's CPU. The same array goes
    // out while the membership is unchanged, so a local reader can also recognise it (the hub's join answer does).
    private static readonly ConditionalWeakTable<ImmutableDictionary<string, Member>, SortedList> Sorted = new();

    private sealed class SortedList(ImmutableArray<Member> members)
    {
        public ImmutableArray<Member> Members { get; } = members;
    }

    private static ImmutableArray<Member> SortedMembers(ImmutableDictionary<string, Member> members) =>
        members.Count == 0
            ? []
            : Sorted.GetValue(members, m => new SortedList([.. m.Values.OrderBy(x => x.JoinedAt).ThenBy(x => x.UserId, StringComparer.Ordinal)])).Members;
}

/// <summary><see cref="Created"/> is false when a create found the conversation already there (direct pairs).</summary>
public sealed record ConversationReply(ConversationView View, bool Created) : ICaasMessage, IJournalStamped
{
    public long JournalSeq { get; init; }
    public IJournalStamped At(long journalSeq) => this with { JournalSeq = journalSeq };
}

/// <summary>
/// The answer to creating a direct conversation whose pair's id at this generation was deleted: the edge tries the
/// pair's next generation (<see cref="Ids.DirectConversationId"/>).
/// </summary>
public sealed record DirectConversationDeleted(string ConversationId) : ICaasMessage;

/// <summary>
/// The acknowledgement of an accepted message, sent only after its event is in the journal.
/// <see cref="Repeat"/> marks the answer to a repeated message id; its content is not kept by the entity.
/// </summary>
public sealed record MessageAck(string MessageId, string ConversationId, long Seq, string SenderId, MessageContent? Content,
    DateTimeOffset CreatedAt, bool Repeat) : ICaasMessage, IJournalStamped
{
    public long JournalSeq { get; init; }
    public IJournalStamped At(long journalSeq) => this with { JournalSeq = journalSeq };
}

/// <summary>A message after an edit, delete or reaction.</summary>
public sealed record MessageChanged(long Seq, string MessageId, string AuthorId, DateTimeOffset CreatedAt, bool Deleted,
    MessageContent? Content, DateTimeOffset? EditedAt, ImmutableDictionary<string, ImmutableArray<string>> Reactions) : ICaasMessage, IJournalStamped
{
    public long JournalSeq { get; init; }
    public IJournalStamped At(long journalSeq) => this with { JournalSeq = journalSeq };

    public static MessageChanged Of(long seq, MessageFacts f, MessageContent? content, DateTimeOffset? editedAt) =>
        new(seq, f.MessageId, f.AuthorId, f.CreatedAt, f.Deleted, content, editedAt,
            f.Reactions.ToImmutableDictionary(kv => kv.Key, kv => kv.Value.Order(StringComparer.Ordinal).ToImmutableArray()));
}

/// <summary>The answer to <see cref="AdmitMessage"/> when the message may go on.</summary>
public sealed record MessageAdmitted(string ConversationId) : ICaasMessage;

/// <summary>The caller's role and the conversation's last message seq; <see cref="JournalSeq"/> is the entity's journal position.</summary>
public sealed record ReadAccess(long LastSeq, Role Role) : ICaasMessage, IJournalStamped
{
    public long JournalSeq { get; init; }
    public IJournalStamped At(long journalSeq) => this with { JournalSeq = journalSeq };
}


public sealed record OwnMessage(long Seq) : ICaasMessage;
