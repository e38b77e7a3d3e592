using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Tenants;

namespace Caas.Actors.Tests;

/// <summary>
/// <see cref="EntityActor"/> on a real journal: an incarnation whose write collides with another incarnation's (a node
/// downed while it still ran) stops instead of going on with a stale state. The conversation's own answers to its
/// commands are in ConversationActorSpecs; here, an entity without a rejection handler of its own.
/// </summary>
public abstract class StaleIncarnationSpecs(string kind) : JournalSpec(kind)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public void A_stale_tenant_settings_incarnation_stops_on_a_collision_and_the_next_one_has_both_writes_in_order()
    {
        var first = Sys.ActorOf(TenantSettingsActor.PropsFor("stale-t", Settings()));
        var stale = Sys.ActorOf(TenantSettingsActor.PropsFor("stale-t", Settings()));
        stale.Tell(new GetTenantSettings("stale-t"));
        Assert.Equal(60, ExpectMsg<TenantSettingsState>(Wait).MessageRatePerMinute);

        first.Tell(new UpdateTenantSettings("stale-t", "admin", 120, null, null, null));
        Assert.Equal(120, ExpectMsg<TenantSettingsState>(Wait).MessageRatePerMinute);

        Watch(stale);
        stale.Tell(new UpdateTenantSettings("stale-t", "admin", 90, null, null, null));
        ExpectTerminated(stale, Wait);

        StopAndWait(first);
        var again = Sys.ActorOf(TenantSettingsActor.PropsFor("stale-t", Settings()));
        again.Tell(new GetTenantSettings("stale-t"));
        Assert.Equal(120, ExpectMsg<TenantSettingsState>(Wait).MessageRatePerMinute);
        again.Tell(new UpdateTenantSettings("stale-t", "admin", 90, null, null, null));
        Assert.Equal(90, ExpectMsg<TenantSettingsState>(Wait).MessageRatePerMinute);
    }
}

public sealed class StaleIncarnationOnSqlite() : StaleIncarnationSpecs("sqlite");

public sealed class StaleIncarnationOnPostgres() : StaleIncarnationSpecs("postgres");
