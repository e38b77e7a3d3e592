using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Conversations;

/// <summary>
/// What a command decides: events to persist (then <see cref="ConversationDecider.Reply"/> answers from the new
/// state), an immediate answer that writes nothing, or a rejection.
/// </summary>
public sealed record Decision(ImmutableArray<IConversationEvent> Events, object? Immediate, Rejection? Rejection)
{
    public static Decision Persist(params IConversationEvent[] events) => new([.. events], null, null);
    public static Decision Answer(object reply) => new([], reply, null);
    public static Decision Reject(Rejection rejection) => new([], null, rejection);
    public static implicit operator Decision(Rejection rejection) => Reject(rejection);
}

/// <summary>Decide(state, command) → events or a rejection. Permissions live here and nowhere else.</summary>
public static class ConversationDecider
{
    public const int MaxTitleLength = 200;
    public const int MaxReactionLength = 64;
    public const int MaxMembersOnCreate = 1_000;
    public const int MaxMetadataValueBytes = 4 * 1024;
    public const int MaxMetadataBytes = 64 * 1024;
    public const int MaxDistinctReactions = 50;
    private const string RoleProblem = "One of owner, admin, moderator, member.";

    public static Decision Decide(ConversationState s, IConversationCommand command, DateTimeOffset now)
    {
        var meta = new EventMeta(command.TenantId, command.ActorId, now);
        return command switch
        {
            CreateConversation c => Create(s, c, meta),
            GetConversation g => RequireMember(s, g.ActorId) ?? Decision.Answer(ConversationView.Of(s)),
            GetReadAccess r => RequireMember(s, r.ActorId) ?? Decision.Answer(new ReadAccess(s.LastSeq, s.RoleOf(r.ActorId)!.Value)),
            GetOwnMessage o => RequireMember(s, o.ActorId)
                               ?? (s.MessageIds.TryGetValue(o.MessageId, out var own) && s.Messages[own].AuthorId == o.ActorId
                                   ? Decision.Answer(new OwnMessage(own))
                                   : Rejection.NotFound("message")),
            UpdateConversation u => Update(s, u, meta),
            DeleteConversation d => RequireRole(s, d.ActorId, Role.Owner, "Only an owner can delete the conversation.")
                                    ?? Decision.Persist(new ConversationDeleted(meta)),
            AddMember a => Add(s, a, meta, now),
            RemoveMember r => Remove(s, r, meta),
            ChangeRole rc => Change(s, rc, meta),
            PostMessage p => Post(s, p, meta, now),
            PostCallSummary cs => CallSummaryPosting.Decide(s, cs, meta),
            RecordCallUpdate cu => CallUpdateRecording.Decide(s, cu, meta),
            AdmitMessage a => Admit(s, a.ActorId, a.ConversationId, a.MessageId, a.IdempotencyHorizon, now)
                              ?? Decision.Answer(new MessageAdmitted(a.ConversationId)),
            EditMessage e => Edit(s, e, meta, now),
            RecordEnrichment re => Enriched(s, re, meta),
            DeleteMessage d => Delete(s, d, meta),
            AddReaction ra => React(s, ra.ActorId, ra.Seq, ra.Reaction, add: true, meta, now),
            RemoveReaction rr => React(s, rr.ActorId, rr.Seq, rr.Reaction, add: false, meta, now),
            Moderate m => Moderation(s, m, meta, now),
            _ => Rejection.Invalid("command", $"Unknown command {command.GetType().Name}."),
        };
    }

    /// <summary>The answer to a command whose events were persisted, computed from the state after them.</summary>
    public static object Reply(ConversationState after, IConversationCommand command, ImmutableArray<IConversationEvent> events)
    {
        switch (command)
        {
            case CreateConversation:
                return new ConversationReply(ConversationView.Of(after), Created: true);
            case PostMessage p:
                var posted = (MessagePosted)events[0];
                return new MessageAck(p.MessageId, p.ConversationId, posted.Seq, p.ActorId, p.Content, posted.Meta.OccurredAt, Repeat: false);
            case PostCallSummary cs:
                return CallSummaryPosting.Reply(cs, events);
            case EditMessage e:
                var edited = (MessageEdited)events[0];
                return MessageChanged.Of(e.Seq, after.Messages[e.Seq], e.Content, edited.Meta.OccurredAt);
            case DeleteMessage d:
                return MessageChanged.Of(d.Seq, after.Messages[d.Seq], null, null);
            case AddReaction ra:
                return MessageChanged.Of(ra.Seq, after.Messages[ra.Seq], null, null);
            case RemoveReaction rr:
                return MessageChanged.Of(rr.Seq, after.Messages[rr.Seq], null, null);
            case UpdateConversation or AddMember or ChangeRole:
                return new ConversationReply(ConversationView.Of(after), Created: false);
            case RemoveMember r when r.UserId != r.ActorId:
                return new ConversationReply(ConversationView.Of(after), Created: false);
            default:
                return new Done(command.GetType().Name);
        }
    }

    private static Decision Create(ConversationState s, CreateConversation c, EventMeta meta)
    {
        if (!ConversationTypes.IsKnown(c.Type))
            return Rejection.Invalid("type", "Must be one of direct, group, channel.");
        if (c.Title is { Length: > MaxTitleLength })
            return Rejection.Invalid("title", $"At most {MaxTitleLength} characters.");
        if (c.Members.Length > MaxMembersOnCreate)
            return Rejection.Invalid("members", $"At most {MaxMembersOnCreate} members on create.");
        if (c.Members.Any(m => !Ids.IsValid(m.UserId)))
            return Rejection.Invalid("members", "Every member must be a valid user id.");
        if (c.Members.Any(m => !Enum.IsDefined(m.Role)))
            return Rejection.Invalid("members", RoleProblem);

        var others = c.Members.Where(m => m.UserId != c.ActorId).DistinctBy(m => m.UserId).ToList();
        if (c.Type == ConversationTypes.Direct && others.Count != 1)
            return Rejection.Invalid("members", "A direct conversation has exactly one other member.");

        if (s.Exists)
        {
            // A direct conversation's id is its pair: creating it again returns it.
            if (c.Type == ConversationTypes.Direct && s.Type == ConversationTypes.Direct && s.IsLive && s.Members.ContainsKey(c.ActorId))
                return Decision.Answer(new ConversationReply(ConversationView.Of(s), Created: false));
            // Deleted, it stays deleted (its history hidden); the pair is recreated under its next generation's id.
            if (c.Type == ConversationTypes.Direct && s.Type == ConversationTypes.Direct && s.Deleted && s.Members.ContainsKey(c.ActorId))
                return Decision.Answer(new DirectConversationDeleted(s.ConversationId));
            return Rejection.Conflict("The conversation already exists.");
        }

        var members = ImmutableArray.CreateBuilder<InitialMember>(others.Count + 1);
        members.Add(new InitialMember(c.ActorId, Role.Owner));
        members.AddRange(others.Select(m => c.Type == ConversationTypes.Direct ? m with { Role = Role.Member } : m));
        return Decision.Persist(new ConversationCreated(meta, c.ConversationId, c.Type, c.Title, members.ToImmutable()));
    }

    private static Decision Update(ConversationState s, UpdateConversation u, EventMeta meta)
    {
        if (RequireRole(s, u.ActorId, Role.Admin, "Only an admin or owner can change the conversation.") is { } r) return r;
        if (u.Title is { Length: > MaxTitleLength })
            return Rejection.Invalid("title", $"At most {MaxTitleLength} characters.");
        if (ValidateMetadata(u.Metadata) is { } invalid) return invalid;
        return Decision.Persist(new ConversationUpdated(meta, u.Title, u.Metadata));
    }

    /// <summary>
    /// Metadata lives in the entity's state and every snapshot: a value is at most 4 KiB and the whole at most
    /// 64 KiB (UTF-8 bytes of keys and values), so one caller cannot make the entity heavy.
    /// </summary>
    public static Rejection? ValidateMetadata(IReadOnlyDictionary<string, string>? metadata)
    {
        if (metadata is null) return null;
        long total = 0;
        foreach (var (key, value) in metadata)
        {
            var valueBytes = System.Text.Encoding.UTF8.GetByteCount(value ?? string.Empty);
            if (valueBytes > MaxMetadataValueBytes)
                return Rejection.Invalid("metadata", $"A metadata value is at most {MaxMetadataValueBytes} bytes (\"{Truncate(key)}\" has {valueBytes}).");
            total += System.Text.Encoding.UTF8.GetByteCount(key) + valueBytes;
        }
        return total > MaxMetadataBytes
            ? Rejection.Invalid("metadata", $"Metadata is at most {MaxMetadataBytes} bytes in all (keys and values).")
            : null;
    }

    private static string Truncate(string key) => key.Length <= 40 ? key : key[..40] + "…";

    private static Decision Add(ConversationState s, AddMember a, EventMeta meta, DateTimeOffset now)
    {
        if (!s.IsLive) return Rejection.NotFound();
        if (!Ids.IsValid(a.UserId)) return Rejection.Invalid("user_id", "Not a valid user id.");
        if (!Enum.IsDefined(a.Role)) return Rejection.Invalid("role", RoleProblem);
        var selfJoin = a.UserId == a.ActorId;
        if (!selfJoin && s.RoleOf(a.ActorId) is null) return Rejection.NotFound();
        if (s.IsBanned(a.UserId, now)) return Rejection.Banned() with { Message = "The user is banned from this conversation." };
        if (selfJoin && s.IsBanned(a.ActorId, now)) return Rejection.Banned();
        if (s.Type == ConversationTypes.Direct) return Rejection.Conflict("A direct conversation's members cannot change.");
        if (s.Members.ContainsKey(a.UserId)) return Rejection.Conflict("The user is already a member.");

        if (selfJoin)
        {
            // Anyone in the tenant may join a channel as a plain member; groups are by invitation.
            if (s.Type != ConversationTypes.Channel || a.Role != Role.Member) return Rejection.NotFound();
            return Decision.Persist(new MemberAdded(meta, a.UserId, Role.Member));
        }

        var actorRole = s.RoleOf(a.ActorId)!.Value;
        if (actorRole < Role.Admin) return Rejection.Forbidden("Only an admin or owner can add members.");
        if (a.Role > actorRole || (a.Role == actorRole && actorRole != Role.Owner))
            return Rejection.Forbidden("You cannot grant a role equal to or above your own.");
        return Decision.Persist(new MemberAdded(meta, a.UserId, a.Role));
    }

    private static Decision Remove(ConversationState s, RemoveMember r, EventMeta meta)
    {
        if (RequireMember(s, r.ActorId) is { } rejected) return rejected;
        if (!s.Members.TryGetValue(r.UserId, out var target)) return Rejection.NotFound("member");
        if (s.Type == ConversationTypes.Direct) return Rejection.Conflict("A direct conversation's members cannot change.");

        if (r.UserId == r.ActorId)
        {
            if (target.Role == Role.Owner && s.OwnerCount == 1)
                return new Rejection(ErrorCodes.LastOwner, "The last owner cannot leave; make another member owner first.");
            return Decision.Persist(new MemberRemoved(meta, r.UserId, "left"));
        }

        var actorRole = s.RoleOf(r.ActorId)!.Value;
        if (actorRole < Role.Admin) return Rejection.Forbidden("Only an admin or owner can remove members.");
        if (target.Role >= actorRole) return Rejection.Forbidden("You cannot act on a peer or a superior.");
        return Decision.Persist(new MemberRemoved(meta, r.UserId, "removed"));
    }

    private static Decision Change(ConversationState s, ChangeRole rc, EventMeta meta)
    {
        if (RequireMember(s, rc.ActorId) is { } rejected) return rejected;
        // Ranks are compared as numbers: a value outside the four roles would outrank or undercut them all.
        if (!Enum.IsDefined(rc.Role)) return Rejection.Invalid("role", RoleProblem);
        if (!s.Members.TryGetValue(rc.UserId, out var target)) return Rejection.NotFound("member");
        if (s.Type == ConversationTypes.Direct) return Rejection.Conflict("A direct conversation's roles cannot change.");
        if (target.Role == rc.Role) return Decision.Answer(new ConversationReply(ConversationView.Of(s), Created: false));

        var actorRole = s.RoleOf(rc.ActorId)!.Value;
        var lastOwnerStepsDown = target.Role == Role.Owner && rc.Role != Role.Owner && s.OwnerCount == 1;
        if (rc.UserId == rc.ActorId)
        {
            if (rc.Role > target.Role) return Rejection.Forbidden("You cannot promote yourself.");
            if (lastOwnerStepsDown) return new Rejection(ErrorCodes.LastOwner, "The last owner cannot step down.");
            return Decision.Persist(new MemberRoleChanged(meta, rc.UserId, rc.Role));
        }

        if (actorRole < Role.Admin) return Rejection.Forbidden("Only an admin or owner can change roles.");
        if (target.Role >= actorRole) return Rejection.Forbidden("You cannot act on a peer or a superior.");
        if (rc.Role > actorRole || (rc.Role == actorRole && actorRole != Role.Owner))
            return Rejection.Forbidden("You cannot grant a role equal to or above your own.");
        return Decision.Persist(new MemberRoleChanged(meta, rc.UserId, rc.Role));
    }

    private static Decision Post(ConversationState s, PostMessage p, EventMeta meta, DateTimeOffset now)
    {
        if (Calls.CallSummaryMessage.IsSummaryId(p.MessageId))
            return Rejection.Invalid("message_id", "Ids of the form call_<32 hex digits> are reserved for call summaries.");
        if (Admit(s, p.ActorId, p.ConversationId, p.MessageId, p.IdempotencyHorizon, now) is { } decided) return decided;
        // After the repeat check: a message already stored is answered as a repeat whatever came before it.
        if (p.AfterMessageId is { } after && !s.MessageIds.ContainsKey(after))
            return new Rejection(PostMessage.OutOfOrder, "The message before this one in its lane is not stored yet.", RetryAfterSeconds: 0);
        if (ValidateContent(p.Content) is { } invalid) return invalid;
        return Decision.Persist(new MessagePosted(meta, s.LastSeq + 1, p.MessageId, p.Content, p.Enrichment)
        {
            EnrichmentDeferred = p.Enrichment?.Deferred == true,
            // Sealed ahead (the pipeline): stored as it is, the entity seals nothing. Sealed for another conversation
            // (or in an older format) it is not used: the entity seals the content itself.
            Sealed = Presealed(p.Sealed, p.ConversationId),
        });
    }

    /// <summary>
    /// A deferred message's enrichment, recorded once: a message already enriched (or never deferred), deleted, or in a
    /// deleted conversation is answered Done without a write, so the projection may send it again after a crash. A
    /// message older than the facts the entity keeps is recorded again; the read model's copy is the same either way.
    /// </summary>
    private static Decision Enriched(ConversationState s, RecordEnrichment re, EventMeta meta)
    {
        if (!s.Exists || re.Seq < 1 || re.Seq > s.LastSeq) return Rejection.NotFound("message");
        var done = Decision.Answer(new Done(nameof(RecordEnrichment)));
        if (s.Deleted) return done;
        if (s.Messages.TryGetValue(re.Seq, out var facts))
        {
            if (facts.MessageId != re.MessageId || facts.AuthorId != re.ActorId) return Rejection.NotFound("message");
            if (facts.Deleted || !facts.AwaitingEnrichment) return done;
        }
        return Decision.Persist(new MessageEnriched(meta, re.Seq, re.MessageId, Privacy.ContentSealing.Recorded(re.Enrichment))
        {
            Sealed = Presealed(re.Sealed, re.ConversationId),
        });
    }

    /// <summary>Content a command brings sealed, if it was sealed (current format) for this conversation.</summary>
    private static Privacy.SealedContent? Presealed(Privacy.SealedContent? sealedContent, string conversationId) =>
        sealedContent is { V: Privacy.SealedContent.Current } s && s.ConversationId == conversationId ? s : null;

    /// <summary>
    /// Whether the actor may post the message id here now; null when it may. The sender's own repeat inside the
    /// horizon is answered with the original acknowledgement even once they are banned or gone (it is their message);
    /// anyone else who is not a member learns nothing (404), and a member reusing another's id gets a conflict.
    /// </summary>
    private static Decision? Admit(ConversationState s, string actorId, string conversationId, string? messageId, TimeSpan horizon,
        DateTimeOffset now)
    {
        if (!s.IsLive) return Rejection.NotFound();
        long seq = 0;
        var known = messageId is not null && s.MessageIds.TryGetValue(messageId, out seq);
        if (known)
        {
            var facts = s.Messages[seq];
            if (facts.AuthorId == actorId && facts.CreatedAt + horizon >= now)
                return Decision.Answer(new MessageAck(messageId!, conversationId, seq, facts.AuthorId, null, facts.CreatedAt, Repeat: true));
        }
        if (s.IsBanned(actorId, now)) return Rejection.Banned();
        if (s.RoleOf(actorId) is null) return Rejection.NotFound();
        if (known) return new Rejection(ErrorCodes.MessageIdConflict, "This message_id was already used for another message.");
        if (s.IsMuted(actorId, now)) return Rejection.Muted();
        return null;
    }

    private static Decision Edit(ConversationState s, EditMessage e, EventMeta meta, DateTimeOffset now)
    {
        if (FindMessage(s, e.ActorId, e.Seq) is { Rejection: { } r }) return r;
        var facts = s.Messages[e.Seq];
        if (facts.AuthorId != e.ActorId) return Rejection.Forbidden("Only the author can edit a message.");
        if (facts.Deleted) return Rejection.Conflict("The message was deleted.");
        // A call's summary is a record of the call, not its starter's words: nobody edits it (it can still be deleted).
        if (Calls.CallSummaryMessage.IsSummaryId(facts.MessageId)) return Rejection.Forbidden("A call summary cannot be edited.");
        if (s.IsMuted(e.ActorId, now)) return Rejection.Muted();
        if (ValidateContent(e.Content) is { } invalid) return invalid;
        return Decision.Persist(new MessageEdited(meta, e.Seq, facts.MessageId, e.Content) { Edit = facts.Edits + 1 });
    }

    private static Decision Delete(ConversationState s, DeleteMessage d, EventMeta meta)
    {
        if (FindMessage(s, d.ActorId, d.Seq) is { Rejection: { } r }) return r;
        var facts = s.Messages[d.Seq];
        if (facts.AuthorId != d.ActorId)
        {
            var actorRole = s.RoleOf(d.ActorId)!.Value;
            var authorRole = s.RoleOf(facts.AuthorId) ?? Role.Member;
            if (actorRole < Role.Moderator) return Rejection.Forbidden("Only the author or a moderator can delete a message.");
            if (authorRole >= actorRole) return Rejection.Forbidden("You cannot act on a peer or a superior.");
        }
        if (facts.Deleted) return Decision.Answer(MessageChanged.Of(d.Seq, facts, null, null));
        return Decision.Persist(new MessageDeleted(meta, d.Seq, facts.MessageId));
    }

    private static Decision React(ConversationState s, string actorId, long seq, string reaction, bool add, EventMeta meta, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(reaction) || reaction.Length > MaxReactionLength)
            return Rejection.Invalid("reaction", $"A reaction is 1 to {MaxReactionLength} characters.");
        if (FindMessage(s, actorId, seq) is { Rejection: { } r }) return r;
        if (s.IsBanned(actorId, now)) return Rejection.Banned();
        var facts = s.Messages[seq];
        if (facts.Deleted) return Rejection.Conflict("The message was deleted.");
        var has = facts.Reactions.TryGetValue(reaction, out var users) && users.Contains(actorId);
        // One reaction per user per emoji: adding twice or removing an absent one changes nothing.
        if (has == add) return Decision.Answer(MessageChanged.Of(seq, facts, null, null));
        // Each distinct reaction is a key in the message's facts and a row in the read model: bounded per message.
        if (add && !facts.Reactions.ContainsKey(reaction) && facts.Reactions.Count >= MaxDistinctReactions)
            return Rejection.Conflict($"A message carries at most {MaxDistinctReactions} distinct reactions.");
        return add
            ? Decision.Persist(new ReactionAdded(meta, seq, facts.MessageId, reaction))
            : Decision.Persist(new ReactionRemoved(meta, seq, facts.MessageId, reaction));
    }

    private static Decision Moderation(ConversationState s, Moderate m, EventMeta meta, DateTimeOffset now)
    {
        if (RequireRole(s, m.ActorId, Role.Moderator, "Only a moderator, admin or owner can moderate.") is { } r) return r;
        if (!Ids.IsValid(m.UserId)) return Rejection.Invalid("user_id", "Not a valid user id.");
        if (m.Duration is { } d && d <= TimeSpan.Zero) return Rejection.Invalid("duration_seconds", "Must be positive.");
        if (m.Reason is { Length: > 500 }) return Rejection.Invalid("reason", "At most 500 characters.");
        if (m.UserId == m.ActorId) return Rejection.Forbidden("You cannot moderate yourself.");
        if (s.Type == ConversationTypes.Direct) return Rejection.Conflict("A direct conversation has no moderation.");
        var actorRole = s.RoleOf(m.ActorId)!.Value;
        var targetRole = s.RoleOf(m.UserId);
        if (targetRole is { } tr && tr >= actorRole) return Rejection.Forbidden("You cannot act on a peer or a superior.");
        if (targetRole == Role.Owner) return Rejection.Forbidden("An owner cannot be moderated.");

        DateTimeOffset? until = m.Duration is { } span ? now + span : null;
        return m.Action switch
        {
            ModerationAction.Ban => Decision.Persist(new UserBanned(meta, m.UserId, until, m.Reason)),
            ModerationAction.Unban => s.Bans.ContainsKey(m.UserId)
                ? Decision.Persist(new UserUnbanned(meta, m.UserId, m.Reason))
                : Rejection.NotFound("ban"),
            ModerationAction.Mute => targetRole is null
                ? Rejection.NotFound("member")
                : Decision.Persist(new UserMuted(meta, m.UserId, until, m.Reason)),
            ModerationAction.Unmute => s.Mutes.ContainsKey(m.UserId)
                ? Decision.Persist(new UserUnmuted(meta, m.UserId, m.Reason))
                : Rejection.NotFound("mute"),
            ModerationAction.Kick => targetRole is null
                ? Rejection.NotFound("member")
                : Decision.Persist(new UserKicked(meta, m.UserId, until, m.Reason)),
            _ => Rejection.Invalid("action", "Unknown moderation action."),
        };
    }

    private static Decision? FindMessage(ConversationState s, string actorId, long seq)
    {
        if (RequireMember(s, actorId) is { } r) return r;
        if (seq < 1 || seq > s.LastSeq) return Rejection.NotFound("message");
        if (seq < s.OldestKeptSeq || !s.Messages.ContainsKey(seq))
            return new Rejection(ErrorCodes.MessageTooOld, "The message is older than the conversation's editable window.");
        return null;
    }

    private static Rejection? ValidateContent(MessageContent content)
    {
        if (content.IsAttachment)
        {
            // The pipeline resolves the file (same tenant and conversation, complete) before a post reaches the entity.
            if (content.Attachment is not { Media: not null }) return Rejection.Invalid("content.media_id", "The attachment was not resolved.");
            return null;
        }
        if (content.Type != "text") return Rejection.Invalid("content.type", "One of text, image, file, audio, video.");
        if (string.IsNullOrWhiteSpace(content.Text)) return Rejection.Invalid("content.text", "Must not be empty.");
        return null;
    }

    /// <summary>Non-members, like other tenants, learn nothing: not_found.</summary>
    private static Decision? RequireMember(ConversationState s, string actorId) =>
        s.IsLive && s.Members.ContainsKey(actorId) ? null : Decision.Reject(Rejection.NotFound());

    private static Decision? RequireRole(ConversationState s, string actorId, Role atLeast, string why)
    {
        if (RequireMember(s, actorId) is { } r) return r;
        return s.RoleOf(actorId) >= atLeast ? null : Decision.Reject(Rejection.Forbidden(why));
    }
}
