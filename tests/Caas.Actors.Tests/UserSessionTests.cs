using Akka.Actor;
using Akka.Persistence;
using Caas.Actors.Common;
using Caas.Actors.Sessions;

namespace Caas.Actors.Tests;

/// <summary>The user session's rules without an actor: read markers, profile validation, the rate rule.</summary>
public sealed class UserSessionDeciderTests
{
    private const string T = "t1";
    private const string U = "alice";
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static (IUserSessionEvent? Event, object Reply) Decide(UserSessionState s, IUserSessionCommand c) =>
        UserSessionDecider.Decide(s, c, T0);

    private static Rejection Invalid(UserSessionState s, IUserSessionCommand c, string field)
    {
        var (evt, reply) = Decide(s, c);
        Assert.Null(evt);
        var r = Assert.IsType<Rejection>(reply);
        Assert.Equal(ErrorCodes.ValidationFailed, r.Code);
        Assert.Equal(new[] { field }, r.Errors!.Keys.ToArray());
        return r;
    }

    [Fact]
    public void Read_markers_only_move_forward_per_conversation()
    {
        var s = UserSessionState.Empty;
        var (evt, reply) = Decide(s, new MarkRead(T, U, "c1", 5));
        var marked = Assert.IsType<ReadMarked>(evt);
        Assert.Equal(new ReadMarked(new EventMeta(T, U, T0), "c1", 5), marked);
        Assert.Equal(new ReadMarker("c1", 5), reply);
        s = s.Apply(marked);

        // a late or repeated receipt changes nothing and answers the current marker
        foreach (var seq in new long[] { 0, 3, 5 })
        {
            (evt, reply) = Decide(s, new MarkRead(T, U, "c1", seq));
            Assert.Null(evt);
            Assert.Equal(new ReadMarker("c1", 5), reply);
        }

        // another conversation has its own marker
        (evt, reply) = Decide(s, new MarkRead(T, U, "c2", 1));
        s = s.Apply(evt!);
        Assert.Equal(new ReadMarker("c2", 1), reply);
        (evt, _) = Decide(s, new MarkRead(T, U, "c1", 6));
        s = s.Apply(evt!);
        Assert.Equal(new Dictionary<string, long> { ["c1"] = 6, ["c2"] = 1 }, s.ReadMarkers.ToDictionary());
    }

    [Fact]
    public void Delivered_markers_are_cumulative_per_conversation_and_only_move_forward()
    {
        var s = UserSessionState.Empty;
        Assert.Equal(new DeliveredMarker("c1", 0), Decide(s, new GetDeliveredMarker(T, U, "c1")).Reply);
        var (evt, reply) = Decide(s, new MarkDelivered(T, U, "c1", 12));
        Assert.Equal(new DeliveredMarked(new EventMeta(T, U, T0), "c1", 12), evt);
        Assert.Equal(new DeliveredMarker("c1", 12), reply);
        s = s.Apply(evt!);
        foreach (var seq in new long[] { 0, 7, 12 })
        {
            (evt, reply) = Decide(s, new MarkDelivered(T, U, "c1", seq));
            Assert.Null(evt);
            Assert.Equal(new DeliveredMarker("c1", 12), reply);
        }
        (evt, _) = Decide(s, new MarkDelivered(T, U, "c2", 3));
        s = s.Apply(evt!);
        Assert.Equal(new DeliveredMarker("c2", 3), Decide(s, new GetDeliveredMarker(T, U, "c2")).Reply);
        Assert.Equal(new Dictionary<string, long> { ["c1"] = 12, ["c2"] = 3 }, s.DeliveredMarkers.ToDictionary());
        Assert.Empty(s.ReadMarkers);
        Invalid(s, new MarkDelivered(T, U, "c1", -1), "event_seq");
    }

    [Fact]
    public void A_negative_read_marker_is_invalid()
    {
        Invalid(UserSessionState.Empty, new MarkRead(T, U, "c1", -1), "seq");
    }

    [Fact]
    public void Profile_updates_merge_and_null_fields_stay()
    {
        var s = UserSessionState.Empty;
        Assert.Equal(new UserProfile(null, "UTC", "en"), s.Profile);

        var (evt, reply) = Decide(s, new UpdateProfile(T, U, "Alice", "Europe/Paris", "fr-FR"));
        s = s.Apply(Assert.IsType<ProfileUpdated>(evt));
        var expected = new UserProfile("Alice", "Europe/Paris", "fr-FR");
        Assert.Equal(expected, s.Profile);
        Assert.Equal(new ProfileView(U, expected), reply);

        (evt, reply) = Decide(s, new UpdateProfile(T, U, null, "America/New_York", null));
        s = s.Apply(evt!);
        Assert.Equal(expected with { TimeZone = "America/New_York" }, s.Profile);
        Assert.Equal(new ProfileView(U, s.Profile), reply);

        (evt, reply) = Decide(s, new GetProfile(T, U));
        Assert.Null(evt);
        Assert.Equal(new ProfileView(U, s.Profile), reply);
    }

    [Theory]
    [InlineData("Mars/Olympus_Mons")]
    [InlineData("Europe/Pariss")]
    [InlineData("Pacific Standard Time")]
    [InlineData("")]
    public void An_unknown_time_zone_is_invalid(string zone) =>
        Invalid(UserSessionState.Empty, new UpdateProfile(T, U, "Alice", zone, null), "time_zone");

    [Theory]
    [InlineData("not a locale!")]
    [InlineData("")]
    [InlineData("e")]
    [InlineData("en-")]
    [InlineData("-en")]
    [InlineData("123")]
    [InlineData("en_US")]
    [InlineData("en-US\n")]
    [InlineData("en-US-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void A_malformed_locale_is_invalid(string locale) =>
        Invalid(UserSessionState.Empty, new UpdateProfile(T, U, null, null, locale), "locale");

    [Theory]
    [InlineData("en")]
    [InlineData("fr-FR")]
    [InlineData("zh-Hant-TW")]
    [InlineData("es-419")]
    public void Well_formed_locales_are_accepted(string locale)
    {
        var (evt, _) = Decide(UserSessionState.Empty, new UpdateProfile(T, U, null, null, locale));
        Assert.Equal(locale, UserSessionState.Empty.Apply(Assert.IsType<ProfileUpdated>(evt)).Profile.Locale);
    }

    [Fact]
    public void A_display_name_is_at_most_100_characters()
    {
        Invalid(UserSessionState.Empty, new UpdateProfile(T, U, new string('a', 101), null, null), "display_name");
        var (evt, _) = Decide(UserSessionState.Empty, new UpdateProfile(T, U, new string('a', 100), null, null));
        Assert.IsType<ProfileUpdated>(evt);
    }

    [Fact]
    public void Bad_input_changes_nothing_even_when_other_fields_are_good()
    {
        var (evt, _) = Decide(UserSessionState.Empty, new UpdateProfile(T, U, "Alice", "Nowhere/Land", "fr-FR"));
        Assert.Null(evt);
    }

    [Fact]
    public void Commands_the_decider_does_not_own_are_refused()
    {
        var (evt, reply) = Decide(UserSessionState.Empty, new AcquireMessageSlot(T, U, 60));
        Assert.Null(evt);
        Assert.Equal(ErrorCodes.ValidationFailed, Assert.IsType<Rejection>(reply).Code);
    }

    [Fact]
    public void Presence_changes_set_status_and_last_seen()
    {
        var s = UserSessionState.Empty.Apply(new PresenceChanged(new EventMeta(T, U, T0), PresenceStatus.Online));
        Assert.Equal(PresenceStatus.Online, s.Status);
        s = s.Apply(new PresenceChanged(new EventMeta(T, U, T0.AddMinutes(3)), PresenceStatus.Offline));
        Assert.Equal(PresenceStatus.Offline, s.Status);
        Assert.Equal(T0.AddMinutes(3), s.LastSeen);
    }

    [Fact]
    public void The_rate_rule_waits_until_the_oldest_slot_leaves_the_window()
    {
        var slots = Enumerable.Range(0, 3).Select(i => T0.AddSeconds(i * 10).UtcTicks).ToList();
        Assert.Null(UserSessionDecider.RetryAfter(slots.Take(2).ToList(), slots[0], 3, T0.AddSeconds(20)));
        Assert.Equal(TimeSpan.FromSeconds(40), UserSessionDecider.RetryAfter(slots, slots[0], 3, T0.AddSeconds(20)));
        Assert.Equal(TimeSpan.Zero, UserSessionDecider.RetryAfter(slots, slots[0], 3, T0.AddSeconds(61)));
    }
}

/// <summary>The user-session actor on a real journal: the rate window, presence, persisted markers and profile.</summary>
public abstract class UserSessionActorSpecs(string kind) : JournalSpec(kind)
{
    private const string Tenant = "t1";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private IActorRef Start(string userId, EntitySettings? settings = null) =>
        Sys.ActorOf(UserSessionActor.PropsFor(Ids.EntityId(Tenant, userId), settings ?? Settings()));

    private T Ask<T>(IActorRef actor, object command)
    {
        actor.Tell(command, TestActor);
        return ExpectMsg<T>(Wait);
    }

    [Fact]
    public void Sixty_messages_a_minute_then_rate_limited_and_a_released_slot_comes_back()
    {
        var actor = Start("u-rate");
        var slots = new List<long>();
        for (var i = 0; i < 60; i++) slots.Add(Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-rate", 60)).SlotTicks);
        Assert.Equal(60, slots.Distinct().Count());
        Assert.Equal(slots.Order().ToArray(), slots.ToArray());

        var limited = Ask<Rejection>(actor, new AcquireMessageSlot(Tenant, "u-rate", 60));
        Assert.Equal(ErrorCodes.RateLimited, limited.Code);
        Assert.NotNull(limited.RetryAfterSeconds);
        Assert.InRange(limited.RetryAfterSeconds!.Value, 1, 60);
        Assert.Equal(Math.Ceiling(limited.RetryAfterSeconds.Value), limited.RetryAfterSeconds.Value);

        // a message that was not accepted gives its slot back: exactly one more fits
        Ask<Done>(actor, new ReleaseMessageSlot(Tenant, "u-rate", slots[17]));
        Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-rate", 60));
        Assert.Equal(ErrorCodes.RateLimited, Ask<Rejection>(actor, new AcquireMessageSlot(Tenant, "u-rate", 60)).Code);

        // releasing a slot that is not held changes nothing
        Ask<Done>(actor, new ReleaseMessageSlot(Tenant, "u-rate", 42));
        Assert.Equal(ErrorCodes.RateLimited, Ask<Rejection>(actor, new AcquireMessageSlot(Tenant, "u-rate", 60)).Code);

        // the window is the user's own
        var other = Start("u-other");
        Ask<MessageSlotGranted>(other, new AcquireMessageSlot(Tenant, "u-other", 60));
    }

    [Fact]
    public void The_limit_comes_with_the_request()
    {
        var actor = Start("u-small");
        for (var i = 0; i < 3; i++) Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-small", 3));
        Assert.Equal(ErrorCodes.RateLimited, Ask<Rejection>(actor, new AcquireMessageSlot(Tenant, "u-small", 3)).Code);
        // a tenant that raised its limit lets the next one through
        Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-small", 4));
    }

    [Fact]
    public void The_hourly_cap_holds_beside_the_minute_rate_and_a_released_slot_frees_both()
    {
        var actor = Start("u-cap");
        var slots = Enumerable.Range(0, 3).Select(_ => Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-cap", 60, 3)).SlotTicks).ToList();
        var capped = Ask<Rejection>(actor, new AcquireMessageSlot(Tenant, "u-cap", 60, 3));
        Assert.Equal(ErrorCodes.RateLimited, capped.Code);
        // the oldest of the hour's slots leaves in about an hour
        Assert.InRange(capped.RetryAfterSeconds!.Value, 3_000, 3_600);
        Ask<Done>(actor, new ReleaseMessageSlot(Tenant, "u-cap", slots[1]));
        Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-cap", 60, 3));
    }

    [Fact]
    public void Rejected_attempts_have_their_own_budget_apart_from_the_message_rate()
    {
        var actor = Start("u-refused");
        for (var i = 0; i < 30; i++) Ask<Done>(actor, new CountRejectedAttempt(Tenant, "u-refused", 30));
        var limited = Ask<Rejection>(actor, new CountRejectedAttempt(Tenant, "u-refused", 30));
        Assert.Equal(ErrorCodes.RateLimited, limited.Code);
        Assert.InRange(limited.RetryAfterSeconds!.Value, 1, 60);
        for (var i = 0; i < 60; i++) Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-refused", 60));
    }

    [Fact]
    public void Online_while_connected_then_offline_after_the_grace_with_last_seen()
    {
        var actor = Start("u-presence");
        Assert.Equal(new PresenceView("u-presence", PresenceStatus.Offline, null, 0), Ask<PresenceView>(actor, new GetPresence(Tenant, "u-presence")));

        var opened = Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-presence", "conn-1", "akka.tcp://caas@node-a:4053"));
        Assert.Equal(new PresenceView("u-presence", PresenceStatus.Online, null, 1), opened);
        Assert.Equal(2, Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-presence", "conn-2", "akka.tcp://caas@node-b:4053")).Connections);

        // one of two connections closing changes nothing, even after the grace
        Assert.Equal(PresenceStatus.Online, Ask<PresenceView>(actor, new ConnectionClosed(Tenant, "u-presence", "conn-1")).Status);
        ExpectNoMsg(TimeSpan.FromMilliseconds(400));
        Assert.Equal(new PresenceView("u-presence", PresenceStatus.Online, null, 1), Ask<PresenceView>(actor, new GetPresence(Tenant, "u-presence")));

        // the last one closing starts the grace: still online at once, offline after it
        var beforeClose = DateTimeOffset.UtcNow;
        var closed = Ask<PresenceView>(actor, new ConnectionClosed(Tenant, "u-presence", "conn-2"));
        Assert.Equal(PresenceStatus.Online, closed.Status);
        Assert.Equal(0, closed.Connections);
        AwaitAssert(() =>
        {
            var p = Ask<PresenceView>(actor, new GetPresence(Tenant, "u-presence"));
            Assert.Equal(PresenceStatus.Offline, p.Status);
            Assert.NotNull(p.LastSeen);
            Assert.True(p.LastSeen >= beforeClose + TimeSpan.FromMilliseconds(150), $"last seen {p.LastSeen:O} is before the grace ended");
        }, Wait, TimeSpan.FromMilliseconds(50));

        // offline survives a restart, with the same last-seen time
        var seen = Ask<PresenceView>(actor, new GetPresence(Tenant, "u-presence")).LastSeen;
        StopAndWait(actor);
        var again = Start("u-presence");
        Assert.Equal(new PresenceView("u-presence", PresenceStatus.Offline, seen, 0), Ask<PresenceView>(again, new GetPresence(Tenant, "u-presence")));
    }

    [Fact]
    public void Reconnecting_within_the_grace_stays_online()
    {
        var settings = Settings() with { OfflineGrace = TimeSpan.FromMilliseconds(600) };
        var actor = Start("u-flap", settings);
        Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-flap", "c1", "node-a"));
        Ask<PresenceView>(actor, new ConnectionClosed(Tenant, "u-flap", "c1"));
        Assert.Equal(PresenceStatus.Online, Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-flap", "c2", "node-a")).Status);
        ExpectNoMsg(TimeSpan.FromMilliseconds(1_000));
        Assert.Equal(new PresenceView("u-flap", PresenceStatus.Online, null, 1), Ask<PresenceView>(actor, new GetPresence(Tenant, "u-flap")));
    }

    [Fact]
    public void Connected_but_idle_is_away_until_the_user_acts_again()
    {
        // idleness is measured against the entity's passivation time (away after 2.5 of it)
        var actor = Start("u-idle", Settings(passivateAfter: TimeSpan.FromMilliseconds(400)));
        Assert.Equal(PresenceStatus.Online, Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-idle", "c1", "node-a")).Status);
        AwaitAssert(() =>
        {
            var p = Ask<PresenceView>(actor, new GetPresence(Tenant, "u-idle"));
            Assert.Equal(PresenceStatus.Away, p.Status);
            Assert.Equal(1, p.Connections);
            Assert.NotNull(p.LastSeen);
        }, Wait, TimeSpan.FromMilliseconds(100));
        // Acting makes the user online again. On a loaded machine the next ask may come after the idle window has
        // passed once more (away again, rightly), so the act and the look are repeated until one pair is close enough.
        AwaitAssert(() =>
        {
            Ask<MessageSlotGranted>(actor, new AcquireMessageSlot(Tenant, "u-idle", 600));
            Assert.Equal(PresenceStatus.Online, Ask<PresenceView>(actor, new GetPresence(Tenant, "u-idle")).Status);
        }, Wait, TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Connections_do_not_survive_the_entity()
    {
        var actor = Start("u-crash");
        Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-crash", "c1", "node-a"));
        StopAndWait(actor);

        var again = Start("u-crash");
        var p = Ask<PresenceView>(again, new GetPresence(Tenant, "u-crash"));
        Assert.Equal(PresenceStatus.Offline, p.Status);
        Assert.Equal(0, p.Connections);
        Assert.NotNull(p.LastSeen);
        // and the recovered entity went offline in the journal, not only in memory
        StopAndWait(again);
        Assert.Equal(PresenceStatus.Offline, Ask<PresenceView>(Start("u-crash"), new GetPresence(Tenant, "u-crash")).Status);
    }

    [Fact]
    public async Task Presence_changes_count_towards_snapshots_too()
    {
        // A user who only connects and disconnects (a bot, a phone reconnecting) must not grow an unbounded replay.
        var actor = Start("u-flaps", Settings(snapshotEvery: 4));
        for (var i = 0; i < 2; i++)
        {
            Ask<PresenceView>(actor, new ConnectionOpened(Tenant, "u-flaps", $"c{i}", "node-a"));
            Ask<PresenceView>(actor, new ConnectionClosed(Tenant, "u-flaps", $"c{i}"));
            AwaitAssert(() => Assert.Equal(PresenceStatus.Offline, Ask<PresenceView>(actor, new GetPresence(Tenant, "u-flaps")).Status),
                Wait, TimeSpan.FromMilliseconds(50));
        }

        var pid = UserSessionActor.PersistenceIdOf(Ids.EntityId(Tenant, "u-flaps"));
        var store = Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);
        await AwaitAssertAsync(async () =>
        {
            var loaded = await store.Ask<LoadSnapshotResult>(new LoadSnapshot(pid, SnapshotSelectionCriteria.Latest, long.MaxValue), Wait);
            Assert.NotNull(loaded.Snapshot);
            Assert.Equal(4, loaded.Snapshot.Metadata.SequenceNr);
            Assert.Equal(PresenceStatus.Offline, Assert.IsType<UserSessionState>(loaded.Snapshot.Snapshot).Status);
        }, Wait);
    }

    [Fact]
    public async Task Read_markers_and_profile_are_persisted_snapshotted_and_recovered()
    {
        var actor = Start("u-reads");
        Assert.Equal(new ReadMarker("c1", 5), Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c1", 5)));
        Assert.Equal(new ReadMarker("c2", 3), Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c2", 3)));
        Assert.Equal(new ReadMarker("c1", 5), Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c1", 2)));
        Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c3", 1));
        Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c3", 2));
        var profile = new UserProfile("Alice Liddell", "Europe/Paris", "fr-FR");
        Assert.Equal(new ProfileView("u-reads", profile),
            Ask<ProfileView>(actor, new UpdateProfile(Tenant, "u-reads", profile.DisplayName, profile.TimeZone, profile.Locale)));
        Assert.Equal(new ReadMarker("c3", 9), Ask<ReadMarker>(actor, new MarkRead(Tenant, "u-reads", "c3", 9)));
        var rejected = Ask<Rejection>(actor, new UpdateProfile(Tenant, "u-reads", null, "Not/AZone", null));
        Assert.Equal(ErrorCodes.ValidationFailed, rejected.Code);

        // six events with a snapshot every five: recovery reads the snapshot and one event after it
        var pid = UserSessionActor.PersistenceIdOf(Ids.EntityId(Tenant, "u-reads"));
        var store = Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);
        await AwaitAssertAsync(async () =>
        {
            var loaded = await store.Ask<LoadSnapshotResult>(new LoadSnapshot(pid, SnapshotSelectionCriteria.Latest, long.MaxValue), Wait);
            Assert.NotNull(loaded.Snapshot);
            Assert.Equal(5, loaded.Snapshot.Metadata.SequenceNr);
            var snap = Assert.IsType<UserSessionState>(loaded.Snapshot.Snapshot);
            Assert.Equal(2, snap.ReadMarkers["c3"]);
            Assert.Equal(profile, snap.Profile);
        }, Wait);

        StopAndWait(actor);
        var again = Start("u-reads");
        Assert.Equal(new ProfileView("u-reads", profile), Ask<ProfileView>(again, new GetProfile(Tenant, "u-reads")));
        Assert.Equal(new ReadMarker("c1", 5), Ask<ReadMarker>(again, new MarkRead(Tenant, "u-reads", "c1", 0)));
        Assert.Equal(new ReadMarker("c2", 3), Ask<ReadMarker>(again, new MarkRead(Tenant, "u-reads", "c2", 0)));
        Assert.Equal(new ReadMarker("c3", 9), Ask<ReadMarker>(again, new MarkRead(Tenant, "u-reads", "c3", 4)));
    }
}

public sealed class UserSessionActorOnSqlite() : UserSessionActorSpecs("sqlite");

public sealed class UserSessionActorOnPostgres() : UserSessionActorSpecs("postgres");
