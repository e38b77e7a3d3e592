using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Tests.Shared;
using Npgsql;

namespace Caas.Streams.Tests;

/// <summary>
/// A journal write held open on a real PostgreSQL: a trigger makes the insert of an entity's rows wait on an advisory
/// lock this holds, so the writer's transaction has drawn its ordering values but does not commit, while other writers
/// commit rows with higher ones (what parallel journal writers do under load). <see cref="ReleaseAsync"/> lets it commit.
/// </summary>
public sealed class JournalHold : IAsyncDisposable
{
    private readonly NpgsqlConnection _admin;
    private readonly NpgsqlConnection _probe;
    private readonly int _key;

    private JournalHold(NpgsqlConnection admin, NpgsqlConnection probe, int key) => (_admin, _probe, _key) = (admin, probe, key);

    /// <summary>From now on, a journal insert of a persistence id ending in <paramref name="persistenceIdSuffix"/> waits.</summary>
    public static async Task<JournalHold> StartAsync(StorageOptions storage, string persistenceIdSuffix, int key)
    {
        var admin = new NpgsqlConnection(storage.JournalConnectionString);
        await admin.OpenAsync();
        await using (var cmd = new NpgsqlCommand($"""
            CREATE FUNCTION caas_test_hold() RETURNS trigger AS $$
            BEGIN
              IF NEW.persistence_id LIKE '%{persistenceIdSuffix}' THEN PERFORM pg_advisory_xact_lock_shared({key}); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER caas_test_hold AFTER INSERT ON journal FOR EACH ROW EXECUTE FUNCTION caas_test_hold();
            SELECT pg_advisory_lock({key});
            """, admin))
            await cmd.ExecuteNonQueryAsync();
        var probe = new NpgsqlConnection(storage.JournalConnectionString);
        await probe.OpenAsync();
        return new JournalHold(admin, probe, key);
    }

    /// <summary>Waits until a writer waits on the hold (its ordering values drawn).</summary>
    public Task WaitUntilHeldAsync() => Polling.TrueAsync(async () =>
    {
        // Only this database's waiters on this key: other tests may hold journals of their own at the same time.
        await using var cmd = new NpgsqlCommand("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = " + _key +
                                                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", _probe);
        return (long)(await cmd.ExecuteScalarAsync())! == 1;
    }, "the slow writer to hold its ordering value");

    /// <summary>The held transaction commits now; later inserts no longer wait.</summary>
    public async Task ReleaseAsync()
    {
        await using var cmd = new NpgsqlCommand($"SELECT pg_advisory_unlock({_key}); DROP TRIGGER caas_test_hold ON journal;", _admin);
        await cmd.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _probe.DisposeAsync();
        await _admin.DisposeAsync();
    }
}

/// <summary>Polls a condition every 50 ms, failing the test after a minute.</summary>
public static class Polling
{
    public static async Task TrueAsync(Func<Task<bool>> done, string what)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        while (!await done())
        {
            if (DateTimeOffset.UtcNow > deadline) Xunit.Assert.Fail($"Timed out waiting for {what}");
            await Task.Delay(50);
        }
    }
}

/// <summary>
/// The scene of the late-commit tests: a local actor system on a fresh PostgreSQL whose events-by-tag gives up on an
/// ordering gap after 50 ms x 4 (keeps the tests short), the late-commit sweep on (200 ms) or off, and two
/// conversations, <c>c-slow</c> (whose next write the test holds) and <c>c-fast</c>, created, with one message in c-slow.
/// </summary>
public sealed class GapScene : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public required ActorSystem System { get; init; }
    public required StorageOptions Storage { get; init; }
    public required string Tenant { get; init; }
    public required IActorRef Slow { get; init; }
    public required IActorRef Fast { get; init; }

    public string SlowPid => ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, "c-slow"));
    public string FastPid => ConversationActor.PersistenceIdOf(Ids.EntityId(Tenant, "c-fast"));

    public static async Task<GapScene> StartAsync(string name, string tenant, bool sweep, string hocon = "")
    {
        var storage = TestDatabases.Storage("postgres");
        var system = ActorSystem.Create(name, CaasConfig.Compose(storage, """
            akka.actor.provider = local
            akka.loglevel = WARNING
            akka.persistence.query.journal.sql.journal-sequence-retrieval { query-delay = 50ms, max-tries = 4 }
            caas.projections.batch-window = 20ms
            """ + (sweep ? "\ncaas.projections.late-commit-sweep = 200ms" : "\ncaas.projections.late-commit-sweep = 0s") + "\n" + hocon));
        var scene = new GapScene
        {
            System = system, Storage = storage, Tenant = tenant,
            Slow = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(tenant, "c-slow"), EntitySettings.Default)),
            Fast = system.ActorOf(ConversationActor.PropsFor(Ids.EntityId(tenant, "c-fast"), EntitySettings.Default)),
        };
        Xunit.Assert.IsType<ConversationReply>(await scene.Slow.Ask<object>(
            new CreateConversation(tenant, "c-slow", "alice", ConversationTypes.Group, null, []), Timeout));
        Xunit.Assert.IsType<ConversationReply>(await scene.Fast.Ask<object>(
            new CreateConversation(tenant, "c-fast", "alice", ConversationTypes.Group, null, []), Timeout));
        Xunit.Assert.IsType<MessageAck>(await scene.PostSlow("s-1"));
        return scene;
    }

    public Task<object> PostSlow(string id) => Post(Slow, "c-slow", id);

    public Task<object> PostFast(string id) => Post(Fast, "c-fast", id);

    private Task<object> Post(IActorRef entity, string conversation, string id) =>
        entity.Ask<object>(new PostMessage(Tenant, conversation, "alice", id, new MessageContent("text", id), TimeSpan.FromHours(1)), Timeout);

    public void Dispose() => System.Dispose();
}
