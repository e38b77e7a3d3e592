using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Actors.Sessions;
using Caas.Streams.ReadModel;
using Caas.Streams.Search;
using Npgsql;
using Xunit;

namespace Caas.Streams.Tests.Search;

/// <summary>
/// The people search's display names on PostgreSQL, where parallel journal writers can commit a user's profile change
/// after later rows were read and the plugin's gap wait ran out: the profile projection's late-commit repair still
/// applies it (a user's last change has nothing after it, so the sweep finds it), and never behind a newer name.
/// </summary>
public sealed class ProfileProjectionLateCommitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static double LateEvents() => Prometheus.Metrics.CreateCounter("caas_projection_late_events_total",
        "Events the events-by-tag stream passed by (committed after later ones were read), read by persistence id instead.", "projection")
        .WithLabels(ProfileIndex.ProjectionName).Value;

    [Fact]
    public async Task A_profile_change_the_tag_stream_passed_by_reaches_the_people_search()
    {
        using var scene = await GapScene.StartAsync("profile-gaps", "t-profgap", sweep: true);
        var (system, storage, tenant) = (scene.System, scene.Storage, scene.Tenant);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var index = new ProfileIndex(store);
        await index.EnsureSchemaAsync();
        system.ActorOf(ProfileProjection.PropsFor(index, ProjectionSettings.From(system.Settings.Config),
            new TagRepair(store, "user-session|", ct => JournalDb.OpenAsync(storage, ct))));

        var slow = system.ActorOf(UserSessionActor.PropsFor(Ids.EntityId(tenant, "u-slow"), EntitySettings.Default));
        var fast = system.ActorOf(UserSessionActor.PropsFor(Ids.EntityId(tenant, "u-fast"), EntitySettings.Default));
        Task<object> Rename(IActorRef user, string id, string name) =>
            user.Ask<object>(new UpdateProfile(tenant, id, name, null, null), Timeout);
        async Task<string?> NameOf(string user)
        {
            await using var c = new NpgsqlConnection(storage.ReadModelConnectionString);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT display_name FROM search_profiles WHERE tenant_id = @t AND user_id = @u", c);
            cmd.Parameters.AddWithValue("t", tenant);
            cmd.Parameters.AddWithValue("u", user);
            return (string?)await cmd.ExecuteScalarAsync();
        }

        Assert.IsType<ProfileView>(await Rename(slow, "u-slow", "Slow One"));
        Assert.IsType<ProfileView>(await Rename(fast, "u-fast", "Fast One"));
        await Polling.TrueAsync(async () => await NameOf("u-slow") == "Slow One" && await NameOf("u-fast") == "Fast One", "the first names");

        // u-slow's next change has its ordering value but does not commit; u-fast's later one commits and is applied.
        await using var hold = await JournalHold.StartAsync(storage, "u-slow", 4245);
        var held = Rename(slow, "u-slow", "Slow Two");
        await hold.WaitUntilHeldAsync();
        // (Its acknowledgement waits for the held write's: the journal answers writes in the order they came.)
        var later = Rename(fast, "u-fast", "Fast Two");
        await Polling.TrueAsync(async () => await NameOf("u-fast") == "Fast Two", "the later change to be applied");
        Assert.False(held.IsCompleted);
        Assert.Equal("Slow One", await NameOf("u-slow"));

        // Committed now, well after the tag stream's gap wait (4 x 50 ms): the sweep applies it, and counts it.
        var lateBefore = LateEvents();
        await hold.ReleaseAsync();
        Assert.IsType<ProfileView>(await held);
        Assert.IsType<ProfileView>(await later);
        await Polling.TrueAsync(async () => await NameOf("u-slow") == "Slow Two", "the late change to reach the people search");
        Assert.True(LateEvents() > lateBefore, "caas_projection_late_events_total counts the repaired change");

        // And a change after it is applied over it, not under it.
        Assert.IsType<ProfileView>(await Rename(slow, "u-slow", "Slow Three"));
        await Polling.TrueAsync(async () => await NameOf("u-slow") == "Slow Three", "the next change");
    }
}
