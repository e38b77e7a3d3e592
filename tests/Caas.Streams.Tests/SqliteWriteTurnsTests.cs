using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Caas.Streams.Tests;

/// <summary>
/// One writer at a time per SQLite file inside the process, waiting in the process (not in SQLite's sleeping busy
/// handler, not on a blocked thread); nothing to wait for on PostgreSQL.
/// </summary>
public sealed class SqliteWriteTurnsTests
{
    private static async Task<OperationalStore> OperationalAsync(StorageOptions storage)
    {
        await using (var readModel = new ReadModelStore(storage)) await readModel.EnsureSchemaAsync();
        var store = new OperationalStore(storage);
        await store.MigrateAsync();
        return store;
    }

    [Fact]
    public async Task A_claim_waits_for_the_files_turn_without_holding_sqlites_lock_and_goes_on_once_the_turn_is_free()
    {
        var storage = TestDatabases.Storage("sqlite");
        await using var store = await OperationalAsync(storage);
        var claims = new MessageIdClaims(store);

        var turn = await store.WriteTurnAsync();
        var claim = claims.ClaimManyAsync([new ClaimRequest("t", "m1", "c1")]);
        await Task.WhenAny(claim, Task.Delay(300));
        Assert.False(claim.IsCompleted);
        Assert.Equal(0, claims.Commits);

        // The waiting claim has not begun its transaction: SQLite's write lock is free for a writer that takes no turn.
        await using (var other = new SqliteConnection(storage.OperationalConnectionString))
        {
            await other.OpenAsync();
            await using var cmd = other.CreateCommand();
            cmd.CommandText = "PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK;";
            await cmd.ExecuteNonQueryAsync();
        }

        turn.Dispose();
        turn.Dispose(); // a second dispose releases nothing more
        var answer = Assert.Single(await claim);
        Assert.True(answer.Fresh);
        Assert.Equal(1, claims.Commits);

        // Released once: the next turn is free at once, and exclusive again.
        var next = await store.WriteTurnAsync();
        var after = store.WriteTurnAsync();
        Assert.False(after.IsCompleted);
        next.Dispose();
        (await after).Dispose();
    }

    [Fact]
    public async Task Turns_are_per_file_and_shared_by_every_connection_string_that_names_it()
    {
        var a = StorageOptions.SqliteFile(TestDatabases.Storage("sqlite").ReadModelConnectionString);
        var b = StorageOptions.SqliteFile(TestDatabases.Storage("sqlite").ReadModelConnectionString);

        var held = await SqliteWriteTurns.TakeAsync($"Data Source={a}");
        var sameFile = SqliteWriteTurns.TakeAsync($"Data Source={a};Pooling=False");
        var otherFile = SqliteWriteTurns.TakeAsync($"Data Source={b}");

        Assert.False(sameFile.IsCompleted);
        Assert.True(otherFile.IsCompleted);
        held.Dispose();
        (await sameFile).Dispose();
        (await otherFile).Dispose();
    }

    [Fact]
    public async Task A_read_model_batch_waits_for_the_files_turn()
    {
        var storage = TestDatabases.Storage("sqlite");
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();
        var writer = new ReadModelWriter(store);
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId("t", "c-1"));
        var created = new ConversationCreated(new EventMeta("t", "alice", DateTimeOffset.UtcNow), "c-1", ConversationTypes.Group, "room", []);

        var turn = await store.WriteTurnAsync();
        var batch = writer.WriteAsync([new EventEnvelope(Offset.Sequence(1), pid, 1, created, 0, [])]);
        await Task.WhenAny(batch, Task.Delay(300));
        Assert.False(batch.IsCompleted);
        Assert.Equal(0, await ReadModelWriter.LoadOffsetAsync(store, ReadModelWriter.ProjectionName));

        turn.Dispose();
        await batch;
        Assert.Equal(1, await ReadModelWriter.LoadOffsetAsync(store, ReadModelWriter.ProjectionName));
    }

    [Fact]
    public async Task PostgreSQL_writers_take_no_turns()
    {
        var storage = TestDatabases.Storage("postgres");
        await using var store = await OperationalAsync(storage);

        using var first = await store.WriteTurnAsync();
        var second = store.WriteTurnAsync();

        Assert.True(second.IsCompleted);
        (await second).Dispose();
        var answers = await new MessageIdClaims(store).ClaimManyAsync([new ClaimRequest("t", "m1", "c1")]);
        Assert.True(answers[0].Fresh);
    }
}
