using Caas.Actors.Hosting;
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
