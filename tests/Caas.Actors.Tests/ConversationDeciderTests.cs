using System.Collections.Immutable;
using Caas.Actors.Common;
using Caas.Actors.Conversations;

namespace Caas.Actors.Tests;

/// <summary>
/// The conversation's rules without an actor: <see cref="ConversationDecider.Decide"/> and
/// <see cref="ConversationState.Apply"/> for every command and every rejection.
/// </summary>
public sealed class ConversationDeciderTests
{
    private const string T = "t1";
    private const string C = "c1";
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Horizon = TimeSpan.FromHours(24);

    // ---- helpers -------------------------------------------------------------------------------------------

    private static Decision Decide(ConversationState s, IConversationCommand c, DateTimeOffset? at = null) =>
        ConversationDecider.Decide(s, c, at ?? T0);

    /// <summary>Decides, asserts the command was accepted with events, and applies them.</summary>
    private static ConversationState Accept(ConversationState s, IConversationCommand c, DateTimeOffset? at = null) =>
        Accept(s, c, out _, at);

    private static ConversationState Accept(ConversationState s, IConversationCommand c, out Decision d, DateTimeOffset? at = null)
    {
        d = Decide(s, c, at);
        Assert.Null(d.Rejection);
        Assert.False(d.Events.IsEmpty, $"{c.GetType().Name} decided no events");
        foreach (var e in d.Events)
        {
            Assert.Equal(T, e.Meta.TenantId);
            Assert.Equal(c.ActorId, e.Meta.ActorId);
            Assert.Equal(at ?? T0, e.Meta.OccurredAt);
            s = s.Apply(e);
        }
        return s;
    }

    private static Rejection Reject(ConversationState s, IConversationCommand c, string code, DateTimeOffset? at = null)
    {
        var d = Decide(s, c, at);
        Assert.True(d.Rejection is not null, $"{c.GetType().Name} was not rejected");
        Assert.Equal(code, d.Rejection!.Code);
        Assert.True(d.Events.IsEmpty);
        Assert.Null(d.Immediate);
        return d.Rejection;
    }

    /// <summary>An answer that writes nothing.</summary>
    private static T Answer<T>(ConversationState s, IConversationCommand c, DateTimeOffset? at = null)
    {
        var d = Decide(s, c, at);
        Assert.Null(d.Rejection);
        Assert.True(d.Events.IsEmpty, $"{c.GetType().Name} wrote {d.Events.Length} events");
        return Assert.IsType<T>(d.Immediate);
    }

    private static TEvent Single<TEvent>(Decision d) => Assert.IsType<TEvent>(Assert.Single(d.Events));

    private static MessageContent Text(string text) => new("text", text);

    private static PostMessage Post(string actor, string messageId, string text = "hello", TimeSpan? horizon = null) =>
        new(T, C, actor, messageId, Text(text), horizon ?? Horizon);

    private static Moderate Mod(string actor, ModerationAction action, string user, TimeSpan? duration = null, string? reason = null) =>
        new(T, C, actor, action, user, duration, reason);

    /// <summary>
    /// A group: alice owner, bob admin, carol moderator, dave and erin members.
    /// </summary>
    private static ConversationState Group(int window = ConversationState.DefaultMessageWindow, string type = ConversationTypes.Group) =>
        Accept(ConversationState.Empty(window), new CreateConversation(T, C, "alice", type, "Team",
        [
            new InitialMember("bob", Role.Admin),
            new InitialMember("carol", Role.Moderator),
            new InitialMember("dave", Role.Member),
            new InitialMember("erin", Role.Member),
        ]));

    private static ConversationState Direct() =>
        Accept(ConversationState.Empty(), new CreateConversation(T, C, "alice", ConversationTypes.Direct, null,
            [new InitialMember("bob", Role.Owner)]));

    private static ConversationState Channel() =>
        Accept(ConversationState.Empty(), new CreateConversation(T, C, "alice", ConversationTypes.Channel, "News", []));

    private static ConversationState Posted(ConversationState s, string actor, int count, string prefix = "m")
    {
        for (var i = 0; i < count; i++) s = Accept(s, Post(actor, $"{prefix}{s.LastSeq + 1}"));
        return s;
    }

    // ---- create ----------------------------------------------------------------------------------------------

    [Fact]
    public void Create_group_makes_the_creator_owner_and_keeps_the_given_roles()
    {
        var d = Decide(ConversationState.Empty(), new CreateConversation(T, C, "alice", ConversationTypes.Group, "Team",
            [new InitialMember("bob", Role.Admin), new InitialMember("alice", Role.Member), new InitialMember("bob", Role.Member)]));
        var created = Single<ConversationCreated>(d);
        Assert.Equal(C, created.ConversationId);
        Assert.Equal(new[] { new InitialMember("alice", Role.Owner), new InitialMember("bob", Role.Admin) }, created.Members.ToArray());

        var s = ConversationState.Empty().Apply(created);
        Assert.True(s.IsLive);
        Assert.Equal(T, s.TenantId);
        Assert.Equal("Team", s.Title);
        Assert.Equal("alice", s.CreatedBy);
        Assert.Equal(T0, s.CreatedAt);
        Assert.Equal(Role.Owner, s.RoleOf("alice"));
        Assert.Equal(Role.Admin, s.RoleOf("bob"));
        Assert.Equal(T0, s.Members["bob"].JoinedAt);

        var reply = Assert.IsType<ConversationReply>(ConversationDecider.Reply(s, new CreateConversation(T, C, "alice",
            ConversationTypes.Group, "Team", []), d.Events));
        Assert.True(reply.Created);
        Assert.Equal(new[] { "alice", "bob" }, reply.View.Members.Select(m => m.UserId).ToArray());
    }

    [Fact]
    public void Create_channel_with_only_the_creator()
    {
        var s = Channel();
        Assert.Equal(ConversationTypes.Channel, s.Type);
        Assert.Equal(new[] { "alice" }, s.Members.Keys.ToArray());
        Assert.Equal(1, s.OwnerCount);
    }

    [Fact]
    public void Create_direct_has_exactly_two_members_and_neither_role_can_be_chosen()
    {
        var s = Direct();
        Assert.Equal(2, s.Members.Count);
        Assert.Equal(Role.Owner, s.RoleOf("alice"));
        // the other member asked for owner; a direct conversation makes them a plain member
        Assert.Equal(Role.Member, s.RoleOf("bob"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Create_direct_needs_exactly_one_other_member(int others)
    {
        var members = Enumerable.Range(0, others).Select(i => new InitialMember($"u{i}", Role.Member)).Prepend(new InitialMember("alice", Role.Member));
        var r = Reject(ConversationState.Empty(), new CreateConversation(T, C, "alice", ConversationTypes.Direct, null, [.. members]),
            ErrorCodes.ValidationFailed);
        Assert.Contains("members", r.Errors!.Keys);
    }

    [Fact]
    public void Creating_a_direct_pair_again_answers_the_existing_conversation()
    {
        var s = Posted(Direct(), "bob", 2);
        // either side of the pair asks again
        foreach (var (actor, other) in new[] { ("alice", "bob"), ("bob", "alice") })
        {
            var reply = Answer<ConversationReply>(s, new CreateConversation(T, C, actor, ConversationTypes.Direct, null,
                [new InitialMember(other, Role.Member)]));
            Assert.False(reply.Created);
            Assert.Equal(2, reply.View.LastSeq);
            Assert.Equal(new[] { "alice", "bob" }, reply.View.Members.Select(m => m.UserId).Order().ToArray());
        }
    }

    [Fact]
    public void Creating_an_existing_group_conflicts()
    {
        Reject(Group(), new CreateConversation(T, C, "alice", ConversationTypes.Group, "Again", []), ErrorCodes.Conflict);
    }

    [Fact]
    public void Creating_a_deleted_direct_pair_again_answers_deleted_so_the_edge_moves_to_the_next_generation()
    {
        var deleted = Accept(Posted(Direct(), "bob", 2), new DeleteConversation(T, C, "alice"));
        foreach (var (actor, other) in new[] { ("alice", "bob"), ("bob", "alice") })
        {
            var reply = Answer<DirectConversationDeleted>(deleted, new CreateConversation(T, C, actor, ConversationTypes.Direct, null,
                [new InitialMember(other, Role.Member)]));
            Assert.Equal(C, reply.ConversationId);
        }
        // the deleted conversation stays deleted and hidden
        Reject(deleted, new GetConversation(T, C, "bob"), ErrorCodes.NotFound);
        // someone outside the pair learns nothing new
        Reject(deleted, new CreateConversation(T, C, "mallory", ConversationTypes.Direct, null, [new InitialMember("bob", Role.Member)]),
            ErrorCodes.Conflict);
        // each generation has its own id; generation 0 is the original derivation
        Assert.Equal(Ids.DirectConversationId("alice", "bob"), Ids.DirectConversationId("bob", "alice", 0));
        Assert.NotEqual(Ids.DirectConversationId("alice", "bob"), Ids.DirectConversationId("alice", "bob", 1));
        Assert.Equal(Ids.DirectConversationId("alice", "bob", 1), Ids.DirectConversationId("bob", "alice", 1));
        Assert.True(Ids.IsValid(Ids.DirectConversationId("alice", "bob", 7)));
    }

    [Theory]
    [InlineData("room", "Team", "type")]
    [InlineData("", "Team", "type")]
    [InlineData("GROUP", "Team", "type")]
    [InlineData("group", null, null)]
    public void Create_validates_type_and_title(string type, string? title, string? badField)
    {
        var command = new CreateConversation(T, C, "alice", type, title, []);
        if (badField is null)
        {
            Accept(ConversationState.Empty(), command);
            return;
        }
        Assert.Contains(badField, Reject(ConversationState.Empty(), command, ErrorCodes.ValidationFailed).Errors!.Keys);
    }

    [Fact]
    public void Create_validates_title_length_and_member_ids()
    {
        Accept(ConversationState.Empty(), new CreateConversation(T, C, "alice", "group", new string('x', ConversationDecider.MaxTitleLength), []));
        Assert.Contains("title", Reject(ConversationState.Empty(), new CreateConversation(T, C, "alice", "group",
            new string('x', ConversationDecider.MaxTitleLength + 1), []), ErrorCodes.ValidationFailed).Errors!.Keys);
        Assert.Contains("members", Reject(ConversationState.Empty(), new CreateConversation(T, C, "alice", "group", null,
            [new InitialMember("bad id|x", Role.Member)]), ErrorCodes.ValidationFailed).Errors!.Keys);
        var tooMany = Enumerable.Range(0, ConversationDecider.MaxMembersOnCreate + 1).Select(i => new InitialMember($"u{i}", Role.Member));
        Assert.Contains("members", Reject(ConversationState.Empty(), new CreateConversation(T, C, "alice", "group", null, [.. tooMany]),
            ErrorCodes.ValidationFailed).Errors!.Keys);
    }

    [Fact]
    public void Commands_on_a_conversation_that_does_not_exist_answer_not_found()
    {
        var none = ConversationState.Empty();
        Reject(none, new GetConversation(T, C, "alice"), ErrorCodes.NotFound);
        Reject(none, new GetReadAccess(T, C, "alice"), ErrorCodes.NotFound);
        Reject(none, new UpdateConversation(T, C, "alice", "x", null), ErrorCodes.NotFound);
        Reject(none, new DeleteConversation(T, C, "alice"), ErrorCodes.NotFound);
        Reject(none, new AddMember(T, C, "alice", "alice", Role.Member), ErrorCodes.NotFound);
        Reject(none, new RemoveMember(T, C, "alice", "alice"), ErrorCodes.NotFound);
        Reject(none, new ChangeRole(T, C, "alice", "bob", Role.Admin), ErrorCodes.NotFound);
        Reject(none, Post("alice", "m1"), ErrorCodes.NotFound);
        Reject(none, new EditMessage(T, C, "alice", 1, Text("x")), ErrorCodes.NotFound);
        Reject(none, new DeleteMessage(T, C, "alice", 1), ErrorCodes.NotFound);
        Reject(none, new AddReaction(T, C, "alice", 1, "👍"), ErrorCodes.NotFound);
        Reject(none, Mod("alice", ModerationAction.Ban, "bob"), ErrorCodes.NotFound);
    }

    // ---- read ------------------------------------------------------------------------------------------------

    [Fact]
    public void Members_read_the_conversation_and_non_members_learn_nothing()
    {
        var s = Posted(Group(), "dave", 3);
        var view = Answer<ConversationView>(s, new GetConversation(T, C, "dave"));
        Assert.Equal(3, view.LastSeq);
        Assert.Equal(5, view.Members.Length);
        var access = Answer<ReadAccess>(s, new GetReadAccess(T, C, "carol"));
        Assert.Equal(new ReadAccess(3, Role.Moderator), access);

        var r = Reject(s, new GetConversation(T, C, "mallory"), ErrorCodes.NotFound);
        Assert.Null(r.Errors);
        Reject(s, new GetReadAccess(T, C, "mallory"), ErrorCodes.NotFound);
    }

    // ---- update and delete -------------------------------------------------------------------------------------

    [Fact]
    public void Admins_and_owners_update_title_and_metadata()
    {
        var s = Accept(Group(), new UpdateConversation(T, C, "bob", "Renamed", ImmutableDictionary<string, string>.Empty.Add("topic", "q3")), out var d);
        Assert.Equal("Renamed", s.Title);
        Assert.Equal("q3", s.Metadata["topic"]);
        Assert.IsType<ConversationReply>(ConversationDecider.Reply(s, new UpdateConversation(T, C, "bob", "Renamed", null), d.Events));

        // null fields stay as they are
        s = Accept(s, new UpdateConversation(T, C, "alice", null, null));
        Assert.Equal("Renamed", s.Title);
        Assert.Equal("q3", s.Metadata["topic"]);
    }

    [Fact]
    public void Metadata_values_over_4_KiB_or_metadata_over_64_KiB_in_all_are_invalid()
    {
        var s = Group();
        var atLimit = ImmutableDictionary<string, string>.Empty.Add("k", new string('a', ConversationDecider.MaxMetadataValueBytes));
        s = Accept(s, new UpdateConversation(T, C, "alice", null, atLimit));

        var overValue = ImmutableDictionary<string, string>.Empty.Add("k", new string('a', ConversationDecider.MaxMetadataValueBytes + 1));
        Assert.Contains("metadata", Reject(s, new UpdateConversation(T, C, "alice", null, overValue), ErrorCodes.ValidationFailed).Errors!.Keys);
        // bytes, not characters: 2,049 two-byte characters are over 4 KiB
        var overInBytes = ImmutableDictionary<string, string>.Empty.Add("k", new string('é', 2_049));
        Reject(s, new UpdateConversation(T, C, "alice", null, overInBytes), ErrorCodes.ValidationFailed);

        // 17 values of 4,000 bytes: each under its limit, over 64 KiB together
        var overAll = Enumerable.Range(0, 17).ToImmutableDictionary(i => $"k{i}", _ => new string('a', 4_000));
        Reject(s, new UpdateConversation(T, C, "alice", null, overAll), ErrorCodes.ValidationFailed);
        Assert.Equal(atLimit, s.Metadata);
    }

    [Fact]
    public void Update_is_refused_below_admin_and_validates_the_title()
    {
        var s = Group();
        Reject(s, new UpdateConversation(T, C, "carol", "x", null), ErrorCodes.Forbidden);
        Reject(s, new UpdateConversation(T, C, "dave", "x", null), ErrorCodes.Forbidden);
        Reject(s, new UpdateConversation(T, C, "mallory", "x", null), ErrorCodes.NotFound);
        Assert.Contains("title", Reject(s, new UpdateConversation(T, C, "alice", new string('x', 201), null), ErrorCodes.ValidationFailed).Errors!.Keys);
    }

    [Fact]
    public void Only_an_owner_deletes_and_a_deleted_conversation_is_gone()
    {
        var s = Group();
        Reject(s, new DeleteConversation(T, C, "bob"), ErrorCodes.Forbidden);
        Reject(s, new DeleteConversation(T, C, "dave"), ErrorCodes.Forbidden);
        Reject(s, new DeleteConversation(T, C, "mallory"), ErrorCodes.NotFound);

        s = Accept(s, new DeleteConversation(T, C, "alice"), out var d);
        Single<ConversationDeleted>(d);
        Assert.True(s.Deleted);
        Assert.False(s.IsLive);
        Assert.IsType<Done>(ConversationDecider.Reply(s, new DeleteConversation(T, C, "alice"), d.Events));
        Reject(s, new GetConversation(T, C, "alice"), ErrorCodes.NotFound);
        Reject(s, Post("dave", "m1"), ErrorCodes.NotFound);
        Reject(s, new DeleteConversation(T, C, "alice"), ErrorCodes.NotFound);
        Reject(s, new AddMember(T, C, "alice", "frank", Role.Member), ErrorCodes.NotFound);
    }

    // ---- members ---------------------------------------------------------------------------------------------

    [Fact]
    public void Admin_adds_members_below_their_own_rank()
    {
        var s = Accept(Group(), new AddMember(T, C, "bob", "frank", Role.Moderator), out var d);
        var added = Single<MemberAdded>(d);
        Assert.Equal(new MemberAdded(added.Meta, "frank", Role.Moderator), added);
        Assert.Equal(Role.Moderator, s.RoleOf("frank"));
        Assert.Equal(T0, s.Members["frank"].JoinedAt);
        var reply = Assert.IsType<ConversationReply>(ConversationDecider.Reply(s, new AddMember(T, C, "bob", "frank", Role.Moderator), d.Events));
        Assert.Contains(reply.View.Members, m => m.UserId == "frank");

        Reject(s, new AddMember(T, C, "bob", "gina", Role.Admin), ErrorCodes.Forbidden);
        Reject(s, new AddMember(T, C, "bob", "gina", Role.Owner), ErrorCodes.Forbidden);
    }

    [Fact]
    public void Owner_may_grant_any_role_including_owner()
    {
        var s = Accept(Group(), new AddMember(T, C, "alice", "frank", Role.Owner));
        s = Accept(s, new AddMember(T, C, "alice", "gina", Role.Admin));
        Assert.Equal(2, s.OwnerCount);
        Assert.Equal(Role.Admin, s.RoleOf("gina"));
    }

    [Fact]
    public void Members_and_moderators_cannot_add_and_non_members_learn_nothing()
    {
        var s = Group();
        Reject(s, new AddMember(T, C, "carol", "frank", Role.Member), ErrorCodes.Forbidden);
        Reject(s, new AddMember(T, C, "dave", "frank", Role.Member), ErrorCodes.Forbidden);
        Reject(s, new AddMember(T, C, "mallory", "frank", Role.Member), ErrorCodes.NotFound);
    }

    [Fact]
    public void Adding_validates_the_user_and_refuses_existing_members()
    {
        var s = Group();
        Assert.Contains("user_id", Reject(s, new AddMember(T, C, "alice", "no spaces", Role.Member), ErrorCodes.ValidationFailed).Errors!.Keys);
        Reject(s, new AddMember(T, C, "alice", "dave", Role.Member), ErrorCodes.Conflict);
    }

    [Fact]
    public void A_banned_user_cannot_be_added_or_join_until_the_ban_expires()
    {
        var s = Accept(Channel(), new AddMember(T, C, "alice", "mod", Role.Moderator));
        s = Accept(s, Mod("mod", ModerationAction.Ban, "mallory", TimeSpan.FromHours(1), "spam"));
        Reject(s, new AddMember(T, C, "alice", "mallory", Role.Member), ErrorCodes.Banned);
        Reject(s, new AddMember(T, C, "mallory", "mallory", Role.Member), ErrorCodes.Banned);

        var later = T0.AddHours(1).AddSeconds(1);
        s = Accept(s, new AddMember(T, C, "mallory", "mallory", Role.Member), later);
        Assert.Equal(Role.Member, s.RoleOf("mallory"));
    }

    [Fact]
    public void Anyone_may_join_a_channel_as_a_member_but_not_a_group()
    {
        var channel = Accept(Channel(), new AddMember(T, C, "frank", "frank", Role.Member), out var d);
        Assert.Equal(new MemberAdded(d.Events[0].Meta, "frank", Role.Member), Single<MemberAdded>(d));
        Assert.Equal(Role.Member, channel.RoleOf("frank"));
        // not with a role of their choosing
        Reject(Channel(), new AddMember(T, C, "frank", "frank", Role.Admin), ErrorCodes.NotFound);
        // groups are by invitation, and a non-member learns nothing about one
        Reject(Group(), new AddMember(T, C, "frank", "frank", Role.Member), ErrorCodes.NotFound);
        // joining twice
        Reject(channel, new AddMember(T, C, "frank", "frank", Role.Member), ErrorCodes.Conflict);
    }

    [Fact]
    public void A_direct_conversations_members_cannot_change()
    {
        var s = Direct();
        Reject(s, new AddMember(T, C, "alice", "carol", Role.Member), ErrorCodes.Conflict);
        Reject(s, new RemoveMember(T, C, "alice", "bob"), ErrorCodes.Conflict);
        Reject(s, new RemoveMember(T, C, "bob", "bob"), ErrorCodes.Conflict);
        Reject(s, new ChangeRole(T, C, "alice", "bob", Role.Admin), ErrorCodes.Conflict);
        Reject(s, Mod("alice", ModerationAction.Mute, "bob"), ErrorCodes.Conflict);
    }

    [Fact]
    public void A_member_leaves()
    {
        var s = Accept(Group(), new RemoveMember(T, C, "dave", "dave"), out var d);
        Assert.Equal("left", Single<MemberRemoved>(d).Reason);
        Assert.Null(s.RoleOf("dave"));
        Assert.IsType<Done>(ConversationDecider.Reply(s, new RemoveMember(T, C, "dave", "dave"), d.Events));
        Reject(s, Post("dave", "m1"), ErrorCodes.NotFound);
        Reject(s, new RemoveMember(T, C, "dave", "dave"), ErrorCodes.NotFound);
    }

    [Fact]
    public void The_last_owner_cannot_leave_but_one_of_two_owners_can()
    {
        var s = Group();
        Reject(s, new RemoveMember(T, C, "alice", "alice"), ErrorCodes.LastOwner);
        s = Accept(s, new ChangeRole(T, C, "alice", "bob", Role.Owner));
        s = Accept(s, new RemoveMember(T, C, "alice", "alice"));
        Assert.Equal(1, s.OwnerCount);
        Reject(s, new RemoveMember(T, C, "bob", "bob"), ErrorCodes.LastOwner);
    }

    [Fact]
    public void Removing_others_needs_admin_and_a_lower_ranked_target()
    {
        var s = Group();
        var removed = Accept(s, new RemoveMember(T, C, "bob", "carol"), out var d);
        Assert.Equal("removed", Single<MemberRemoved>(d).Reason);
        Assert.Null(removed.RoleOf("carol"));
        Assert.IsType<ConversationReply>(ConversationDecider.Reply(removed, new RemoveMember(T, C, "bob", "carol"), d.Events));

        Reject(s, new RemoveMember(T, C, "bob", "alice"), ErrorCodes.Forbidden);  // superior
        Reject(Accept(s, new AddMember(T, C, "alice", "bob2", Role.Admin)), new RemoveMember(T, C, "bob", "bob2"), ErrorCodes.Forbidden); // peer
        Reject(s, new RemoveMember(T, C, "carol", "dave"), ErrorCodes.Forbidden);  // moderator
        Reject(s, new RemoveMember(T, C, "dave", "erin"), ErrorCodes.Forbidden);   // member
        Reject(s, new RemoveMember(T, C, "alice", "nobody"), ErrorCodes.NotFound);
        Reject(s, new RemoveMember(T, C, "mallory", "dave"), ErrorCodes.NotFound);
    }

    // ---- roles -----------------------------------------------------------------------------------------------

    [Fact]
    public void Roles_change_downwards_from_the_actor()
    {
        var s = Accept(Group(), new ChangeRole(T, C, "bob", "dave", Role.Moderator), out var d);
        Assert.Equal(new MemberRoleChanged(d.Events[0].Meta, "dave", Role.Moderator), Single<MemberRoleChanged>(d));
        Assert.Equal(Role.Moderator, s.RoleOf("dave"));
        Assert.IsType<ConversationReply>(ConversationDecider.Reply(s, new ChangeRole(T, C, "bob", "dave", Role.Moderator), d.Events));
        s = Accept(s, new ChangeRole(T, C, "bob", "carol", Role.Member));
        Assert.Equal(Role.Member, s.RoleOf("carol"));
        s = Accept(s, new ChangeRole(T, C, "alice", "erin", Role.Owner));
        Assert.Equal(2, s.OwnerCount);
        // joined_at survives a role change
        Assert.Equal(T0, s.Members["erin"].JoinedAt);
    }

    [Fact]
    public void Nobody_acts_on_a_peer_or_a_superior()
    {
        var s = Accept(Group(), new AddMember(T, C, "alice", "zoe", Role.Owner));
        s = Accept(s, new AddMember(T, C, "alice", "bob2", Role.Admin));
        Reject(s, new ChangeRole(T, C, "bob", "bob2", Role.Member), ErrorCodes.Forbidden);   // admin on admin
        Reject(s, new ChangeRole(T, C, "bob", "alice", Role.Member), ErrorCodes.Forbidden);  // admin on owner
        Reject(s, new ChangeRole(T, C, "alice", "zoe", Role.Admin), ErrorCodes.Forbidden);   // owner on owner
        Reject(s, new ChangeRole(T, C, "bob", "dave", Role.Admin), ErrorCodes.Forbidden);    // grant own rank
        Reject(s, new ChangeRole(T, C, "bob", "dave", Role.Owner), ErrorCodes.Forbidden);    // grant above
        Reject(s, new ChangeRole(T, C, "carol", "dave", Role.Moderator), ErrorCodes.Forbidden);
        Reject(s, new ChangeRole(T, C, "dave", "erin", Role.Moderator), ErrorCodes.Forbidden);
        Reject(s, new ChangeRole(T, C, "alice", "nobody", Role.Admin), ErrorCodes.NotFound);
        Reject(s, new ChangeRole(T, C, "mallory", "dave", Role.Admin), ErrorCodes.NotFound);
    }

    [Fact]
    public void Nobody_promotes_themselves_but_anyone_but_the_last_owner_may_step_down()
    {
        var s = Group();
        Reject(s, new ChangeRole(T, C, "dave", "dave", Role.Moderator), ErrorCodes.Forbidden);
        Reject(s, new ChangeRole(T, C, "bob", "bob", Role.Owner), ErrorCodes.Forbidden);
        Reject(s, new ChangeRole(T, C, "alice", "alice", Role.Admin), ErrorCodes.LastOwner);

        s = Accept(s, new ChangeRole(T, C, "bob", "bob", Role.Member));
        Assert.Equal(Role.Member, s.RoleOf("bob"));
        s = Accept(s, new ChangeRole(T, C, "alice", "dave", Role.Owner));
        s = Accept(s, new ChangeRole(T, C, "alice", "alice", Role.Admin));
        Assert.Equal(Role.Admin, s.RoleOf("alice"));
        Assert.Equal(1, s.OwnerCount);
    }

    [Fact]
    public void Setting_the_role_a_member_already_has_writes_nothing()
    {
        var reply = Answer<ConversationReply>(Group(), new ChangeRole(T, C, "alice", "bob", Role.Admin));
        Assert.False(reply.Created);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    [InlineData(99)]
    public void A_role_outside_the_four_is_invalid(int value)
    {
        // Ranks compare as numbers, so an undefined value would outrank an owner or undercut a member.
        var role = (Role)value;
        Assert.Contains("role", Reject(Group(), new AddMember(T, C, "alice", "frank", role), ErrorCodes.ValidationFailed).Errors!.Keys);
        Assert.Contains("role", Reject(Group(), new ChangeRole(T, C, "alice", "dave", role), ErrorCodes.ValidationFailed).Errors!.Keys);
        Assert.Contains("members", Reject(ConversationState.Empty(), new CreateConversation(T, C, "alice", ConversationTypes.Group, null,
            [new InitialMember("frank", role)]), ErrorCodes.ValidationFailed).Errors!.Keys);
    }

    // ---- post ------------------------------------------------------------------------------------------------

    [Fact]
    public void Posts_get_gap_free_sequence_numbers_and_an_acknowledgement()
    {
        var s = Group();
        for (var i = 1; i <= 5; i++)
        {
            var author = i % 2 == 0 ? "dave" : "carol";
            var at = T0.AddSeconds(i);
            var command = Post(author, $"m{i}", $"text {i}");
            s = Accept(s, command, out var d, at);
            var posted = Single<MessagePosted>(d);
            Assert.Equal(i, posted.Seq);
            Assert.Equal(i, s.LastSeq);
            Assert.Equal($"text {i}", posted.Content.Text);
            Assert.Equal(new MessageFacts($"m{i}", author, at, false, ImmutableDictionary<string, ImmutableHashSet<string>>.Empty),
                s.Messages[i]);
            Assert.Equal(i, s.MessageIds[$"m{i}"]);

            var ack = Assert.IsType<MessageAck>(ConversationDecider.Reply(s, command, d.Events));
            Assert.Equal(new MessageAck($"m{i}", C, i, author, Text($"text {i}"), at, Repeat: false), ack);
        }
    }

    [Fact]
    public void A_repeated_message_id_inside_the_horizon_answers_the_original_ack_and_writes_nothing()
    {
        var s = Accept(Group(), Post("dave", "m1", "hi"), T0);
        s = Accept(s, Post("erin", "m2"), T0.AddMinutes(1));

        var ack = Answer<MessageAck>(s, Post("dave", "m1", "hi"), T0.AddHours(23));
        Assert.True(ack.Repeat);
        Assert.Equal(1, ack.Seq);
        Assert.Equal("dave", ack.SenderId);
        Assert.Equal(T0, ack.CreatedAt);
        Assert.Equal(C, ack.ConversationId);
        // exactly at the horizon it is still a repeat
        Assert.True(Answer<MessageAck>(s, Post("dave", "m1", "hi"), T0 + Horizon).Repeat);
        // a repeat is answered even to a user muted since, because nothing new is said
        var muted = Accept(s, Mod("carol", ModerationAction.Mute, "dave"));
        Assert.True(Answer<MessageAck>(muted, Post("dave", "m1", "hi")).Repeat);
    }

    [Fact]
    public void A_post_that_must_come_after_another_is_refused_retryably_until_that_one_is_stored()
    {
        var s = Accept(Group(), Post("dave", "k1", "first"), T0);
        // Kafka's pipelined lane: k3 must follow k2, which is not stored yet; nothing is written.
        var refused = Reject(s, Post("dave", "k3", "third") with { AfterMessageId = "k2" }, PostMessage.OutOfOrder);
        Assert.Equal(0, refused.RetryAfterSeconds);
        s = Accept(s, Post("erin", "k2", "second") with { AfterMessageId = "k1" }, T0.AddSeconds(1));
        var third = Single<MessagePosted>(Decide(s, Post("dave", "k3", "third") with { AfterMessageId = "k2" }, T0.AddSeconds(2)));
        Assert.Equal((3L, "k3"), (third.Seq, third.MessageId));
        // A message already stored is its own repeat, whatever the precondition says.
        Assert.True(Answer<MessageAck>(s, Post("dave", "k1", "first") with { AfterMessageId = "never-stored" }).Repeat);
        // The usual refusals come first: a non-member is not told about order.
        Reject(s, Post("mallory", "k9") with { AfterMessageId = "never-stored" }, ErrorCodes.NotFound);
    }

    [Fact]
    public void A_message_id_reused_by_another_author_or_beyond_the_horizon_conflicts()
    {
        var s = Accept(Group(), Post("dave", "m1"), T0);
        Reject(s, Post("erin", "m1"), ErrorCodes.MessageIdConflict, T0.AddSeconds(1));
        Reject(s, Post("dave", "m1"), ErrorCodes.MessageIdConflict, T0 + Horizon + TimeSpan.FromSeconds(1));
        // a tenant with a shorter horizon
        Reject(s, Post("dave", "m1", horizon: TimeSpan.FromMinutes(1)), ErrorCodes.MessageIdConflict, T0.AddMinutes(2));
    }

    [Fact]
    public void Admission_answers_as_the_post_would_without_writing_and_a_banned_authors_own_repeat_is_its_ack()
    {
        var s = Accept(Group(), Post("dave", "m1", "hi"), T0);
        AdmitMessage Admit(string actor, string? messageId) => new(T, C, actor, messageId, Horizon);

        Assert.Equal(new MessageAdmitted(C), Answer<MessageAdmitted>(s, Admit("erin", "m2"), T0));
        Assert.Equal(new MessageAdmitted(C), Answer<MessageAdmitted>(s, Admit("erin", null), T0));
        Reject(s, Admit("mallory", "m2"), ErrorCodes.NotFound, T0);
        // someone else's id: a non-member learns nothing, a member is told it is taken
        Reject(s, Admit("mallory", "m1"), ErrorCodes.NotFound, T0);
        Reject(s, Admit("erin", "m1"), ErrorCodes.MessageIdConflict, T0);
        Reject(ConversationState.Empty(), Admit("dave", "m1"), ErrorCodes.NotFound, T0);

        var banned = Accept(s, Mod("carol", ModerationAction.Ban, "dave"), T0);
        Reject(banned, Admit("dave", "m2"), ErrorCodes.Banned, T0);
        Reject(banned, Post("dave", "m2"), ErrorCodes.Banned, T0);
        // their own stored message stays theirs: the original acknowledgement, by admission and by the post itself
        Assert.Equal(1, Answer<MessageAck>(banned, Admit("dave", "m1"), T0.AddMinutes(1)).Seq);
        Assert.True(Answer<MessageAck>(banned, Post("dave", "m1", "hi"), T0.AddMinutes(1)).Repeat);
        Reject(banned, Post("dave", "m1", "hi"), ErrorCodes.Banned, T0 + Horizon + TimeSpan.FromSeconds(1));

        var muted = Accept(s, Mod("carol", ModerationAction.Mute, "erin"), T0);
        Reject(muted, Admit("erin", "m2"), ErrorCodes.Muted, T0);
    }

    [Fact]
    public void Non_members_banned_and_muted_users_cannot_post()
    {
        var s = Group();
        Reject(s, Post("mallory", "m1"), ErrorCodes.NotFound);
        var banned = Accept(s, Mod("carol", ModerationAction.Ban, "dave"));
        Reject(banned, Post("dave", "m1"), ErrorCodes.Banned);
        var muted = Accept(s, Mod("carol", ModerationAction.Mute, "erin", TimeSpan.FromMinutes(10)));
        Reject(muted, Post("erin", "m1"), ErrorCodes.Muted);
        // the mute expires by itself
        Accept(muted, Post("erin", "m1"), T0.AddMinutes(10).AddTicks(1));
        // and others still post
        Accept(muted, Post("dave", "m1"));
    }

    [Theory]
    [InlineData("text", "")]
    [InlineData("text", "   \n\t")]
    [InlineData("text", null)]
    [InlineData("image", "a picture")]
    public void Post_validates_the_content(string type, string? text)
    {
        var r = Reject(Group(), new PostMessage(T, C, "dave", "m1", new MessageContent(type, text), Horizon), ErrorCodes.ValidationFailed);
        Assert.Single(r.Errors!.Keys, k => k.StartsWith("content.", StringComparison.Ordinal));
    }

    [Fact]
    public void A_rejected_post_consumes_no_sequence_number()
    {
        var s = Accept(Group(), Post("dave", "m1"));
        Reject(s, new PostMessage(T, C, "dave", "m2", Text(""), Horizon), ErrorCodes.ValidationFailed);
        s = Accept(s, Post("dave", "m2"), out var d);
        Assert.Equal(2, Single<MessagePosted>(d).Seq);
    }

    // ---- edit ------------------------------------------------------------------------------------------------

    [Fact]
    public void The_author_edits_and_the_reply_carries_the_new_content()
    {
        var s = Posted(Group(), "dave", 2);
        var command = new EditMessage(T, C, "dave", 2, Text("fixed"));
        var after = Accept(s, command, out var d, T0.AddMinutes(5));
        var edited = Single<MessageEdited>(d);
        // Edits are numbered per message (the sealed content is bound to the number): the first is 1, the next 2.
        Assert.Equal(new MessageEdited(edited.Meta, 2, "m2", Text("fixed")) { Edit = 1 }, edited);
        Accept(after, new EditMessage(T, C, "dave", 2, Text("fixed again")), out var again, T0.AddMinutes(6));
        Assert.Equal(2, Single<MessageEdited>(again).Edit);
        var changed = Assert.IsType<MessageChanged>(ConversationDecider.Reply(after, command, d.Events));
        Assert.Equal(2, changed.Seq);
        Assert.Equal("m2", changed.MessageId);
        Assert.Equal("fixed", changed.Content!.Text);
        Assert.Equal(T0.AddMinutes(5), changed.EditedAt);
        Assert.False(changed.Deleted);
    }

    [Fact]
    public void Only_the_author_edits_a_live_message()
    {
        var s = Posted(Group(), "dave", 1);
        Reject(s, new EditMessage(T, C, "alice", 1, Text("x")), ErrorCodes.Forbidden);
        Reject(s, new EditMessage(T, C, "mallory", 1, Text("x")), ErrorCodes.NotFound);
        Reject(s, new EditMessage(T, C, "dave", 0, Text("x")), ErrorCodes.NotFound);
        Reject(s, new EditMessage(T, C, "dave", 2, Text("x")), ErrorCodes.NotFound);
        Assert.Contains("content.text", Reject(s, new EditMessage(T, C, "dave", 1, Text(" ")), ErrorCodes.ValidationFailed).Errors!.Keys);
        Reject(Accept(s, Mod("carol", ModerationAction.Mute, "dave")), new EditMessage(T, C, "dave", 1, Text("x")), ErrorCodes.Muted);
        var deleted = Accept(s, new DeleteMessage(T, C, "dave", 1));
        Reject(deleted, new EditMessage(T, C, "dave", 1, Text("x")), ErrorCodes.Conflict);
    }

    [Fact]
    public void Edit_delete_and_react_on_a_message_older_than_the_window_answer_message_too_old()
    {
        var s = Posted(Group(window: 3), "dave", 5);
        Assert.Equal(3, s.OldestKeptSeq);
        foreach (var seq in new long[] { 1, 2 })
        {
            Reject(s, new EditMessage(T, C, "dave", seq, Text("x")), ErrorCodes.MessageTooOld);
            Reject(s, new DeleteMessage(T, C, "dave", seq), ErrorCodes.MessageTooOld);
            Reject(s, new AddReaction(T, C, "dave", seq, "👍"), ErrorCodes.MessageTooOld);
            Reject(s, new RemoveReaction(T, C, "dave", seq, "👍"), ErrorCodes.MessageTooOld);
        }
        Accept(s, new EditMessage(T, C, "dave", 3, Text("x")));
    }

    // ---- delete message --------------------------------------------------------------------------------------

    [Fact]
    public void The_author_deletes_their_message_and_a_second_delete_writes_nothing()
    {
        var s = Posted(Group(), "dave", 1);
        var command = new DeleteMessage(T, C, "dave", 1);
        s = Accept(s, command, out var d);
        Assert.Equal("m1", Single<MessageDeleted>(d).MessageId);
        Assert.True(s.Messages[1].Deleted);
        var changed = Assert.IsType<MessageChanged>(ConversationDecider.Reply(s, command, d.Events));
        Assert.True(changed.Deleted);
        Assert.Null(changed.Content);

        Assert.True(Answer<MessageChanged>(s, command).Deleted);
        // the deleted message keeps its sequence number; the next one follows
        s = Accept(s, Post("dave", "m2"), out d);
        Assert.Equal(2, Single<MessagePosted>(d).Seq);
    }

    [Fact]
    public void Moderators_and_above_delete_messages_of_lower_ranked_authors()
    {
        var s = Posted(Group(), "dave", 1);               // 1 by a member
        s = Posted(s, "carol", 1);                        // 2 by a moderator
        s = Posted(s, "bob", 1);                          // 3 by an admin
        s = Accept(s, new AddMember(T, C, "alice", "carol2", Role.Moderator));

        Reject(s, new DeleteMessage(T, C, "erin", 1), ErrorCodes.Forbidden);   // member on member
        Accept(s, new DeleteMessage(T, C, "carol", 1));                        // moderator on member
        Reject(s, new DeleteMessage(T, C, "carol2", 2), ErrorCodes.Forbidden); // moderator on moderator
        Reject(s, new DeleteMessage(T, C, "carol", 3), ErrorCodes.Forbidden);  // moderator on admin
        Accept(s, new DeleteMessage(T, C, "bob", 2));                          // admin on moderator
        Accept(s, new DeleteMessage(T, C, "alice", 3));                        // owner on admin
        Reject(s, new DeleteMessage(T, C, "mallory", 1), ErrorCodes.NotFound);
    }

    [Fact]
    public void A_moderator_deletes_the_message_of_an_author_who_has_left()
    {
        var s = Posted(Group(), "bob", 1);
        s = Accept(s, new ChangeRole(T, C, "bob", "bob", Role.Member));
        s = Accept(s, new RemoveMember(T, C, "bob", "bob"));
        Accept(s, new DeleteMessage(T, C, "carol", 1));
    }

    // ---- reactions -------------------------------------------------------------------------------------------

    [Fact]
    public void Own_messages_are_found_by_id_and_nobody_learns_of_others()
    {
        var s = Posted(Posted(Group(), "dave", 1), "erin", 1);
        Assert.Equal(1, Answer<OwnMessage>(s, new GetOwnMessage(T, C, "dave", "m1")).Seq);
        Assert.Equal(2, Answer<OwnMessage>(s, new GetOwnMessage(T, C, "erin", "m2")).Seq);
        // another member's message, an unknown id and a non-member all read the same
        Assert.Equal(Reject(s, new GetOwnMessage(T, C, "dave", "m2"), ErrorCodes.NotFound),
            Reject(s, new GetOwnMessage(T, C, "dave", "nope"), ErrorCodes.NotFound));
        Reject(s, new GetOwnMessage(T, C, "mallory", "m1"), ErrorCodes.NotFound);
    }

    [Fact]
    public void A_message_carries_at_most_50_distinct_reactions()
    {
        var s = Posted(Group(), "dave", 1);
        for (var i = 0; i < ConversationDecider.MaxDistinctReactions; i++)
            s = Accept(s, new AddReaction(T, C, "erin", 1, $"r{i}"));
        Assert.Equal(50, s.Messages[1].Reactions.Count);

        Reject(s, new AddReaction(T, C, "erin", 1, "one-too-many"), ErrorCodes.Conflict);
        // an existing reaction may still be added by others, and removing one makes room again
        s = Accept(s, new AddReaction(T, C, "dave", 1, "r0"));
        s = Accept(s, new RemoveReaction(T, C, "erin", 1, "r1"));
        Accept(s, new AddReaction(T, C, "erin", 1, "fits-again"));
    }

    [Fact]
    public void One_reaction_per_user_per_emoji()
    {
        var s = Posted(Group(), "dave", 1);
        var add = new AddReaction(T, C, "erin", 1, "👍");
        s = Accept(s, add, out var d);
        Assert.Equal(new ReactionAdded(d.Events[0].Meta, 1, "m1", "👍"), Single<ReactionAdded>(d));
        var changed = Assert.IsType<MessageChanged>(ConversationDecider.Reply(s, add, d.Events));
        Assert.Equal(new[] { "erin" }, changed.Reactions["👍"].ToArray());

        // adding twice writes nothing and answers the current reactions
        Assert.Equal(new[] { "erin" }, Answer<MessageChanged>(s, add).Reactions["👍"].ToArray());

        s = Accept(s, new AddReaction(T, C, "dave", 1, "👍"));
        s = Accept(s, new AddReaction(T, C, "dave", 1, "🎉"));
        Assert.Equal(new[] { "dave", "erin" }, s.Messages[1].Reactions["👍"].Order(StringComparer.Ordinal).ToArray());

        var remove = new RemoveReaction(T, C, "erin", 1, "👍");
        s = Accept(s, remove, out d);
        Assert.Equal("👍", Single<ReactionRemoved>(d).Reaction);
        Assert.Equal(new[] { "dave" }, s.Messages[1].Reactions["👍"].ToArray());
        Assert.IsType<MessageChanged>(ConversationDecider.Reply(s, remove, d.Events));
        // removing an absent one writes nothing
        Answer<MessageChanged>(s, remove);
        Answer<MessageChanged>(s, new RemoveReaction(T, C, "erin", 1, "🙈"));

        // the last user's removal drops the emoji altogether
        s = Accept(s, new RemoveReaction(T, C, "dave", 1, "👍"));
        Assert.False(s.Messages[1].Reactions.ContainsKey("👍"));
        Assert.True(s.Messages[1].Reactions.ContainsKey("🎉"));
    }

    [Fact]
    public void Reactions_are_refused_on_deleted_messages_to_non_members_and_when_malformed()
    {
        var s = Posted(Group(), "dave", 1);
        Reject(s, new AddReaction(T, C, "mallory", 1, "👍"), ErrorCodes.NotFound);
        Reject(s, new AddReaction(T, C, "erin", 9, "👍"), ErrorCodes.NotFound);
        Assert.Contains("reaction", Reject(s, new AddReaction(T, C, "erin", 1, " "), ErrorCodes.ValidationFailed).Errors!.Keys);
        Reject(s, new AddReaction(T, C, "erin", 1, new string('x', ConversationDecider.MaxReactionLength + 1)), ErrorCodes.ValidationFailed);
        var deleted = Accept(s, new DeleteMessage(T, C, "dave", 1));
        Reject(deleted, new AddReaction(T, C, "erin", 1, "👍"), ErrorCodes.Conflict);
    }

    // ---- moderation ------------------------------------------------------------------------------------------

    [Fact]
    public void Ban_removes_the_member_until_it_expires_or_is_lifted()
    {
        var s = Accept(Group(), Mod("carol", ModerationAction.Ban, "dave", TimeSpan.FromHours(2), "spam"), out var d);
        var banned = Single<UserBanned>(d);
        Assert.Equal(new UserBanned(banned.Meta, "dave", T0.AddHours(2), "spam"), banned);
        Assert.IsType<Done>(ConversationDecider.Reply(s, Mod("carol", ModerationAction.Ban, "dave"), d.Events));
        Assert.Null(s.RoleOf("dave"));
        Assert.True(s.IsBanned("dave", T0.AddHours(1)));
        Assert.False(s.IsBanned("dave", T0.AddHours(2)));
        Reject(s, Post("dave", "m1"), ErrorCodes.Banned);
        Reject(s, new AddMember(T, C, "bob", "dave", Role.Member), ErrorCodes.Banned, T0.AddHours(1));
        // an expired ban no longer blocks
        var back = Accept(s, new AddMember(T, C, "bob", "dave", Role.Member), T0.AddHours(2));
        Accept(back, Post("dave", "m1"), T0.AddHours(2));

        // lifting it
        s = Accept(s, Mod("carol", ModerationAction.Unban, "dave", reason: "appeal"), out d);
        Assert.Equal("appeal", Single<UserUnbanned>(d).Reason);
        Assert.False(s.Bans.ContainsKey("dave"));
        Accept(s, new AddMember(T, C, "bob", "dave", Role.Member));
        Reject(s, Mod("carol", ModerationAction.Unban, "dave"), ErrorCodes.NotFound);
    }

    [Fact]
    public void A_ban_without_expiry_lasts_and_a_non_member_can_be_banned_in_advance()
    {
        var s = Accept(Channel(), Mod("alice", ModerationAction.Ban, "mallory"));
        Assert.Null(s.Bans["mallory"].Until);
        Reject(s, new AddMember(T, C, "mallory", "mallory", Role.Member), ErrorCodes.Banned, T0.AddYears(10));
    }

    [Fact]
    public void Mute_and_unmute()
    {
        var s = Accept(Group(), Mod("bob", ModerationAction.Mute, "carol", TimeSpan.FromMinutes(30), "calm down"), out var d);
        Assert.Equal(new UserMuted(d.Events[0].Meta, "carol", T0.AddMinutes(30), "calm down"), Single<UserMuted>(d));
        Assert.Equal(Role.Moderator, s.RoleOf("carol")); // still a member
        Reject(s, Post("carol", "m1"), ErrorCodes.Muted);

        s = Accept(s, Mod("bob", ModerationAction.Unmute, "carol"), out d);
        Single<UserUnmuted>(d);
        Assert.False(s.Mutes.ContainsKey("carol"));
        Accept(s, Post("carol", "m1"));
        Reject(s, Mod("bob", ModerationAction.Unmute, "carol"), ErrorCodes.NotFound);
        Reject(s, Mod("bob", ModerationAction.Mute, "mallory"), ErrorCodes.NotFound);
    }

    [Fact]
    public void Kick_removes_and_with_an_expiry_bars_rejoining_until_then()
    {
        var s = Accept(Channel(), new AddMember(T, C, "dave", "dave", Role.Member));
        var kicked = Accept(s, Mod("alice", ModerationAction.Kick, "dave"), out var d);
        Assert.Equal("dave", Single<UserKicked>(d).UserId);
        Assert.Null(kicked.RoleOf("dave"));
        Assert.False(kicked.Bans.ContainsKey("dave"));
        Accept(kicked, new AddMember(T, C, "dave", "dave", Role.Member));

        var barred = Accept(s, Mod("alice", ModerationAction.Kick, "dave", TimeSpan.FromMinutes(5), "cool off"));
        Reject(barred, new AddMember(T, C, "dave", "dave", Role.Member), ErrorCodes.Banned, T0.AddMinutes(4));
        Accept(barred, new AddMember(T, C, "dave", "dave", Role.Member), T0.AddMinutes(5));
        Reject(kicked, Mod("alice", ModerationAction.Kick, "dave"), ErrorCodes.NotFound);
    }

    [Fact]
    public void Moderation_needs_a_moderator_over_a_lower_ranked_target()
    {
        var s = Accept(Group(), new AddMember(T, C, "alice", "carol2", Role.Moderator));
        foreach (var action in Enum.GetValues<ModerationAction>())
        {
            Reject(s, Mod("dave", action, "erin"), ErrorCodes.Forbidden);     // member
            Reject(s, Mod("carol", action, "carol2"), ErrorCodes.Forbidden);  // peer
            Reject(s, Mod("carol", action, "bob"), ErrorCodes.Forbidden);     // superior
            Reject(s, Mod("bob", action, "alice"), ErrorCodes.Forbidden);     // owner
            Reject(s, Mod("carol", action, "carol"), ErrorCodes.Forbidden);   // self
            Reject(s, Mod("mallory", action, "erin"), ErrorCodes.NotFound);   // non-member
        }
        var coOwned = Accept(s, new ChangeRole(T, C, "alice", "bob", Role.Owner));
        Reject(coOwned, Mod("alice", ModerationAction.Ban, "bob"), ErrorCodes.Forbidden);
    }

    [Fact]
    public void Moderation_validates_its_fields()
    {
        var s = Group();
        Assert.Contains("user_id", Reject(s, Mod("carol", ModerationAction.Ban, "a b"), ErrorCodes.ValidationFailed).Errors!.Keys);
        Assert.Contains("duration_seconds", Reject(s, Mod("carol", ModerationAction.Ban, "dave", TimeSpan.Zero), ErrorCodes.ValidationFailed).Errors!.Keys);
        Reject(s, Mod("carol", ModerationAction.Mute, "dave", TimeSpan.FromSeconds(-5)), ErrorCodes.ValidationFailed);
        Assert.Contains("reason", Reject(s, Mod("carol", ModerationAction.Ban, "dave", reason: new string('r', 501)), ErrorCodes.ValidationFailed).Errors!.Keys);
        Accept(s, Mod("carol", ModerationAction.Ban, "dave", reason: new string('r', 500)));
    }

    // ---- bounded window ---------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 1)]
    [InlineData(5, 17)]
    [InlineData(50, 50)]
    public void The_state_keeps_facts_for_exactly_the_last_n_messages(int window, int extra)
    {
        var s = Posted(Group(window), "dave", window + extra);
        Assert.Equal(window + extra, s.LastSeq);
        Assert.Equal(window, s.Messages.Count);
        Assert.Equal(window, s.MessageIds.Count);
        var kept = Enumerable.Range(extra + 1, window).Select(i => (long)i).ToArray();
        Assert.Equal(kept, s.Messages.Keys.Order().ToArray());
        Assert.Equal(kept.Select(i => $"m{i}").Order().ToArray(), s.MessageIds.Keys.Order().ToArray());
        Assert.All(s.MessageIds, kv => Assert.Equal(kv.Key, s.Messages[kv.Value].MessageId));
        // the newest kept message can still be changed
        Accept(s, new AddReaction(T, C, "erin", s.LastSeq, "👍"));
    }

    [Fact]
    public void A_state_recovered_under_a_smaller_window_shrinks_to_it_on_the_next_post()
    {
        // The window is configuration (CAAS_MESSAGE_WINDOW); a snapshot taken under a larger one must not keep
        // the larger state forever.
        var s = Posted(Group(window: 10), "dave", 10) with { MessageWindow = 3 };
        s = Accept(s, Post("dave", "m11"));
        Assert.Equal(new long[] { 9, 10, 11 }, s.Messages.Keys.Order().ToArray());
        Assert.Equal(new[] { "m10", "m11", "m9" }, s.MessageIds.Keys.Order(StringComparer.Ordinal).ToArray());
        Reject(s, new EditMessage(T, C, "dave", 8, Text("x")), ErrorCodes.MessageTooOld);
    }

    // ---- invariants under random commands ----------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void Random_command_sequences_keep_the_invariants(int seed)
    {
        const int window = 7;
        var rng = new Random(seed);
        string[] users = ["alice", "bob", "carol", "dave", "erin", "frank"];
        string[] emojis = ["👍", "🎉", "❤"];
        var type = new[] { ConversationTypes.Group, ConversationTypes.Channel, ConversationTypes.Direct }[seed % 3];
        var s = Accept(ConversationState.Empty(window), new CreateConversation(T, C, "alice", type, "Random",
            type == ConversationTypes.Direct ? [new InitialMember("bob", Role.Member)]
                : [new InitialMember("bob", Role.Admin), new InitialMember("carol", Role.Moderator), new InitialMember("dave", Role.Member)]));
        var now = T0;
        var posts = 0;
        var accepted = 0;
        var usedIds = new List<string>();

        for (var step = 0; step < 1_500; step++)
        {
            now = now.AddSeconds(rng.Next(0, 120));
            string U() => users[rng.Next(users.Length)];
            Role R() => (Role)rng.Next(-1, 5); // now and then outside the four roles
            long Seq() => rng.Next(0, (int)s.LastSeq + 2);
            TimeSpan? Dur() => rng.Next(3) == 0 ? null : TimeSpan.FromMinutes(rng.Next(1, 30));
            string Id()
            {
                if (usedIds.Count > 0 && rng.Next(4) == 0) return usedIds[rng.Next(usedIds.Count)];
                var id = $"m{step}";
                usedIds.Add(id);
                return id;
            }

            var actor = U();
            IConversationCommand command = rng.Next(16) switch
            {
                0 => new AddMember(T, C, actor, rng.Next(2) == 0 ? actor : U(), R()),
                1 => new RemoveMember(T, C, actor, rng.Next(2) == 0 ? actor : U()),
                2 => new ChangeRole(T, C, actor, U(), R()),
                3 or 4 or 5 or 6 => new PostMessage(T, C, actor, Id(), Text(rng.Next(10) == 0 ? "" : "hi"),
                    TimeSpan.FromMinutes(rng.Next(1, 60))),
                7 => new EditMessage(T, C, actor, Seq(), Text("edited")),
                8 => new DeleteMessage(T, C, actor, Seq()),
                9 => new AddReaction(T, C, actor, Seq(), emojis[rng.Next(emojis.Length)]),
                10 => new RemoveReaction(T, C, actor, Seq(), emojis[rng.Next(emojis.Length)]),
                11 or 12 => new Moderate(T, C, actor, (ModerationAction)rng.Next(5), U(), Dur(), null),
                13 => new UpdateConversation(T, C, actor, "t" + step, null),
                14 => new GetReadAccess(T, C, actor),
                // deleting ends everything, so it is tried only near the end
                _ => step > 1_400 && rng.Next(10) == 0 ? new DeleteConversation(T, C, actor) : new GetConversation(T, C, actor),
            };

            var d = ConversationDecider.Decide(s, command, now);
            Assert.True(d.Rejection is null || (d.Events.IsEmpty && d.Immediate is null), "a rejection carries nothing else");
            if (d.Events.IsEmpty) continue;
            accepted++;
            var lastSeqBefore = s.LastSeq;
            foreach (var e in d.Events) s = s.Apply(e);
            // every accepted command has an answer computed from the new state
            Assert.NotNull(ConversationDecider.Reply(s, command, d.Events));

            if (d.Events[0] is MessagePosted posted)
            {
                posts++;
                Assert.Equal(lastSeqBefore + 1, posted.Seq);
            }

            Assert.Equal(posts, s.LastSeq);
            Assert.True(s.Messages.Count <= window);
            Assert.Equal(Math.Min(window, posts), s.Messages.Count);
            Assert.Equal(s.Messages.Count, s.MessageIds.Count);
            Assert.All(s.MessageIds, kv => Assert.Equal(kv.Key, s.Messages[kv.Value].MessageId));
            Assert.All(s.Messages.Keys, seq => Assert.InRange(seq, s.OldestKeptSeq, s.LastSeq));
            Assert.All(s.Members, kv =>
            {
                Assert.Equal(kv.Key, kv.Value.UserId);
                Assert.True(Enum.IsDefined(kv.Value.Role));
            });
            Assert.All(s.Members.Keys, u => Assert.False(s.IsBanned(u, now), $"{u} is a member and banned"));
            if (!s.Deleted) Assert.True(s.OwnerCount >= 1, "a live conversation lost its last owner");
            if (type == ConversationTypes.Direct) Assert.Equal(2, s.Members.Count);
        }
        Assert.True(accepted > 50, $"only {accepted} commands were accepted; the generator is too weak");
        Assert.True(posts > window, $"only {posts} posts; the window was never exercised");
    }

    // ---- deferred enrichment ----------------------------------------------------------------------------------

    private static readonly MessageEnrichment Found = new([], ["intent"]);

    [Fact]
    public void A_deferred_post_is_marked_and_its_enrichment_is_recorded_once()
    {
        var s = Group();
        s = Accept(s, new PostMessage(T, C, "dave", "m-d", Text("later"), Horizon, MessageEnrichment.DeferredForLater), out var posted);
        Assert.True(Single<MessagePosted>(posted).EnrichmentDeferred);
        Assert.True(s.Messages[1].AwaitingEnrichment);
        // an inline-enriched post is not waiting for anything
        s = Accept(s, new PostMessage(T, C, "dave", "m-i", Text("now"), Horizon, Found));
        Assert.False(s.Messages[2].AwaitingEnrichment);
        Assert.Equal("RecordEnrichment", Answer<Done>(s, new RecordEnrichment(T, C, "dave", 2, "m-i", Found)).What);

        s = Accept(s, new RecordEnrichment(T, C, "dave", 1, "m-d", Found), out var recorded);
        var enriched = Single<MessageEnriched>(recorded);
        Assert.Equal((1L, "m-d", "dave"), (enriched.Seq, enriched.MessageId, enriched.Meta.ActorId));
        Assert.Equal(["intent"], enriched.Enrichment!.Degraded.ToArray());
        Assert.False(enriched.Enrichment.Deferred);
        Assert.False(s.Messages[1].AwaitingEnrichment);
        Assert.Equal(2, s.LastSeq);

        // the same enrichment again (a replayed projection batch) writes nothing
        Answer<Done>(s, new RecordEnrichment(T, C, "dave", 1, "m-d", Found));
    }

    [Fact]
    public void Recording_an_enrichment_of_a_deleted_or_unknown_message_writes_nothing()
    {
        var s = Accept(Group(), new PostMessage(T, C, "dave", "m-d", Text("later"), Horizon, MessageEnrichment.DeferredForLater));
        Reject(s, new RecordEnrichment(T, C, "dave", 2, "m-x", Found), ErrorCodes.NotFound);
        Reject(s, new RecordEnrichment(T, C, "dave", 1, "m-other", Found), ErrorCodes.NotFound);
        Reject(s, new RecordEnrichment(T, C, "erin", 1, "m-d", Found), ErrorCodes.NotFound);
        Reject(ConversationState.Empty(), new RecordEnrichment(T, C, "dave", 1, "m-d", Found), ErrorCodes.NotFound);
        s = Accept(s, new DeleteMessage(T, C, "dave", 1));
        Answer<Done>(s, new RecordEnrichment(T, C, "dave", 1, "m-d", Found));
    }

    [Fact]
    public void A_deferred_message_older_than_the_kept_facts_is_still_recorded()
    {
        var s = Accept(Group(window: 2), new PostMessage(T, C, "dave", "m-d", Text("later"), Horizon, MessageEnrichment.DeferredForLater));
        s = Posted(s, "dave", 3);
        Assert.False(s.Messages.ContainsKey(1));
        Single<MessageEnriched>(Decide(s, new RecordEnrichment(T, C, "dave", 1, "m-d", Found)));
    }
}
