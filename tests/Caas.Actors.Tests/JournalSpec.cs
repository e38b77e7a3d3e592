using Akka.Actor;
using Akka.Configuration;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Tests.Shared;

namespace Caas.Actors.Tests;

/// <summary>
/// An Akka test kit on a real journal (SQLite file or PostgreSQL database). serialize-messages stays off here:
/// Akka.Persistence.Sql 1.5.73 sends itself an internal WriteFinished that carries a Task and cannot pass that
/// check. Every CAAS type is proven by the serializer round-trip tests and crosses real remoting in the cluster tests.
/// </summary>
public abstract class JournalSpec : Akka.TestKit.Xunit2.TestKit
{
    protected JournalSpec(string kind, string extra = "") : this(TestDatabases.Storage(kind), extra) { }

    private JournalSpec(StorageOptions storage, string extra) : base(Config(storage, extra))
    {
        Storage = storage;
    }

    protected StorageOptions Storage { get; }

    protected static EntitySettings Settings(int snapshotEvery = 5, int window = 50, TimeSpan? passivateAfter = null) =>
        new(snapshotEvery, passivateAfter ?? TimeSpan.FromMinutes(5), window, TimeSpan.FromMilliseconds(200));

    private static Config Config(StorageOptions storage, string extra) => CaasConfig.Compose(storage, $$"""
        akka.actor.provider = local
        akka.loglevel = WARNING
        {{extra}}
        """);

    /// <summary>Stops an actor and waits until it is gone, so the next incarnation recovers from the journal.</summary>
    protected void StopAndWait(IActorRef actor)
    {
        Watch(actor);
        actor.Tell(PoisonPill.Instance);
        ExpectTerminated(actor, TimeSpan.FromSeconds(10));
        Unwatch(actor);
    }
}

/// <summary>Stands in for a shard: receives the entity's Passivate request and forwards it to the probe.</summary>
public sealed class ParentProbe : ReceiveActor
{
    public ParentProbe(Props child, IActorRef probe)
    {
        var c = Context.ActorOf(child, "entity");
        Receive<Akka.Cluster.Sharding.Passivate>(p => { probe.Tell(p); Context.Stop(c); });
        ReceiveAny(m => c.Forward(m));
    }
}
