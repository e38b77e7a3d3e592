using Caas.Streams.Operational;
using Caas.Tests.Shared;

namespace Caas.Web.Tests.Turn;

/// <summary>The operator's TURN server list in the operational store, on both databases.</summary>
public sealed class TurnServerStoreTests
{
    [Theory]
    [InlineData("postgres")]
    [InlineData("sqlite")]
    public async Task Servers_are_added_overridden_and_removed(string kind)
    {
        var storage = TestDatabases.Storage(kind);
        await using var ops = new OperationalStore(storage);
        await ops.MigrateAsync();
        var store = new TurnServerStore(ops);
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

        var row = new TurnServerRow("ts_1", "turn:a:3478", "own-secret", TurnServerStore.Active, TurnServerStore.FromAdmin, now, now, null);
        Assert.True(await store.AddAsync(row));
        Assert.False(await store.AddAsync(row with { Id = "ts_2" })); // the same URI
        Assert.False(await store.AddAsync(row with { Url = "turn:b:3478" })); // the same id
        Assert.Equal([row], await store.ListAsync());

        await store.SetAsync("ts_1", row.Url, row.Source, TurnServerStore.Draining, deleted: false);
        await store.SetAsync("cfg_x", "turn:c:3478", TurnServerStore.FromConfig, TurnServerStore.Active, deleted: true);
        var rows = await store.ListAsync();
        Assert.Equal((TurnServerStore.Draining, "own-secret", (DateTimeOffset?)null), (rows[0].State, rows[0].Secret, rows[0].DeletedAt));
        Assert.Equal(("cfg_x", (string?)null), (rows[1].Id, rows[1].Secret));
        Assert.NotNull(rows[1].DeletedAt);

        await store.SetAsync("cfg_x", "turn:c:3478", TurnServerStore.FromConfig, TurnServerStore.Active, deleted: false);
        Assert.Null((await store.ListAsync()).Single(r => r.Id == "cfg_x").DeletedAt);
        await store.RemoveAsync("ts_1");
        Assert.Equal(["cfg_x"], (await store.ListAsync()).Select(r => r.Id));
    }
}
