using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Node;
using Caas.Streams.Audit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Caas.Web.Tests.Audit;

/// <summary>A tamper node that snapshots its entities every 3 events, so snapshots get signed too.</summary>
public sealed class CheckpointNodeFixture : TamperNodeFixture
{
    protected override NodeOptions Configure(NodeOptions options) => options with { ExtraHocon = "caas.entities.snapshot-every = 3" };
}

/// <summary>
/// Keyed links and signed checkpoints against a database writer, on a real node and its PostgreSQL journal: a cut-off
/// tail, a deleted entity, a chain recomputed with plain SHA-256 over an edited event, an edited snapshot and edited
/// tags are each named by persistence id and seq (the unkeyed chain of before missed all of them).
/// </summary>
public sealed class CheckpointTests(CheckpointNodeFixture node) : IClassFixture<CheckpointNodeFixture>
{
    private const string Tenant = "t-checkpoint";

    private static List<(string Pid, long Seq, string Problem)> Broken(System.Text.Json.JsonElement report) =>
        [.. report.GetProperty("broken").EnumerateArray().Select(b => (b.Str("persistence_id"), b.GetProperty("seq").GetInt64(), b.Str("problem")))];

    private async Task<byte[]> RowAsync(string pid, long seq)
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT message FROM journal WHERE persistence_id = @p AND sequence_number = @s", c);
        cmd.Parameters.AddWithValue("p", pid);
        cmd.Parameters.AddWithValue("s", seq);
        return (byte[])(await cmd.ExecuteScalarAsync())!;
    }

    private async Task<long> SnapshotsAsync(string pid)
    {
        await using var c = new NpgsqlConnection(node.Postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM snapshot WHERE persistence_id = @p", c);
        cmd.Parameters.AddWithValue("p", pid);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Truncation_deletion_recomputed_chains_edited_snapshots_and_tags_are_named()
    {
        using var alice = node.Client(Tenant, "alice");
        using var admin = node.Client(Tenant, "root", "admin");
        var cut = await alice.CreateGroupAsync("bob");
        var gone = await alice.CreateGroupAsync();
        var forged = await alice.CreateGroupAsync();
        var tagged = await alice.CreateGroupAsync();
        foreach (var text in new[] { "one", "two", "three", "four" }) await alice.PostMessageAsync(cut, text);
        await alice.PostMessageAsync(gone, "soon gone");
        await alice.PostMessageAsync(forged, "the original");
        await alice.PostMessageAsync(tagged, "tagged");
        var pidCut = $"conversation|{Tenant}|{cut}";
        var pidGone = $"conversation|{Tenant}|{gone}";
        var pidForged = $"conversation|{Tenant}|{forged}";
        var pidTagged = $"conversation|{Tenant}|{tagged}";
        for (var i = 0; i < 1_200 && await SnapshotsAsync(pidCut) == 0; i++) await Task.Delay(50);
        Assert.True(await SnapshotsAsync(pidCut) > 0, "snapshot-every = 3 should have snapshotted the first room");

        Assert.True(await node.Services.GetRequiredService<AuditCheckpoints>().RunAsync() > 0);
        var (status, clean) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.Equal(200, status);
        Assert.True(clean.GetProperty("intact").GetBoolean(), clean.ToString());
        // Every link this node wrote is keyed; one checkpoint per entity head (4 rooms) plus the snapshot(s).
        Assert.Equal(clean.GetProperty("chained").GetInt64(), clean.GetProperty("keyed").GetInt64());
        Assert.True(clean.GetProperty("checkpoints").GetInt64() >= 5, clean.ToString());

        // 1. The last two events of a room cut off (seq 5 = "four" was its signed head).
        Assert.Equal(2, await node.ExecuteAsync("DELETE FROM journal WHERE persistence_id = @p AND sequence_number >= 4", ("p", pidCut)));
        // 2. A whole room deleted.
        Assert.Equal(2, await node.ExecuteAsync("DELETE FROM journal WHERE persistence_id = @p", ("p", pidGone)));
        // 3. A post edited and its link recomputed with plain SHA-256, as anyone with the database can.
        var system = node.Services.GetRequiredService<ActorSystem>();
        var serializer = system.Serialization.FindSerializerForType(typeof(MessagePosted));
        var manifest = Caas.Actors.Serialization.CaasSerializer.Manifests[typeof(MessagePosted)];
        var post = (MessagePosted)((Akka.Serialization.SerializerWithStringManifest)serializer).FromBinary(await RowAsync(pidForged, 2), manifest);
        var edited = post with { Meta = post.Meta with { OccurredAt = post.Meta.OccurredAt.AddHours(-1) } };
        var relinked = HashChain.Seal(edited, post.Meta.PrevHash, serializer.ToBinary);
        Assert.Equal(1, await node.ExecuteAsync("UPDATE journal SET message = @m WHERE persistence_id = @p AND sequence_number = 2",
            ("m", serializer.ToBinary(relinked)), ("p", pidForged)));
        // 4. A snapshot edited.
        Assert.True(await node.ExecuteAsync("UPDATE snapshot SET snapshot = snapshot || '\\x20'::bytea WHERE persistence_id = @p", ("p", pidCut)) > 0);
        // 5. Tags edited: the event hidden from its tenant's feed, another moved into a foreign tenant's.
        Assert.Equal(1, await node.ExecuteAsync("UPDATE journal SET tags = ';conversation;' WHERE persistence_id = @p AND sequence_number = 1", ("p", pidTagged)));
        Assert.Equal(1, await node.ExecuteAsync(
            "UPDATE journal SET tags = ';conversation;tenant:" + Tenant + ";tenant:t-other;' WHERE persistence_id = @p AND sequence_number = 2", ("p", pidTagged)));

        var (_, report) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.False(report.GetProperty("intact").GetBoolean());
        var links = Broken(report);
        Assert.Contains((pidCut, 5L, "truncated: journal ends at 3"), links);
        Assert.Contains((pidGone, 2L, "entity_deleted"), links);
        Assert.Contains((pidForged, 2L, "unkeyed_link"), links);
        Assert.Contains((pidForged, 2L, "checkpoint_mismatch"), links);
        Assert.Contains(links, l => l.Pid == pidCut && l.Problem == "snapshot_mismatch");
        Assert.Contains((pidTagged, 1L, $"tag_missing: tenant:{Tenant}"), links);
        Assert.Contains((pidTagged, 2L, "tag_foreign: tenant:t-other"), links);

        // The command line (with the same key, derived from the same master key) reports the same and exits 1.
        var (exit, output) = await TamperTests.CaasAsync(node.Postgres, "audit", "verify", "--tenant", Tenant);
        Assert.Equal(1, exit);
        Assert.Contains($"broken persistence_id={pidCut} seq=5 problem=truncated: journal ends at 3", output);
        Assert.Contains($"broken persistence_id={pidGone} seq=2 problem=entity_deleted", output);
        Assert.Contains($"broken persistence_id={pidForged} seq=2 problem=unkeyed_link", output);
    }

    [Fact]
    public async Task A_forged_or_removed_checkpoint_is_named()
    {
        const string tenant = "t-checkpoint-forge";
        using var alice = node.Client(tenant, "alice");
        using var admin = node.Client(tenant, "root", "admin");
        var room = await alice.CreateGroupAsync();
        await alice.PostMessageAsync(room, "hello");
        var pid = $"conversation|{tenant}|{room}";
        await node.Services.GetRequiredService<AuditCheckpoints>().RunAsync();

        // Moving the signed head back (to hide a later truncation) breaks the checkpoint's MAC.
        Assert.Equal(1, await node.ExecuteAsync("UPDATE audit_checkpoints SET seq = 1 WHERE persistence_id = @p AND kind = 'journal'", ("p", pid)));
        var (_, report) = await admin.ApiGet("/v1/admin/audit/verify");
        Assert.Contains((pid, 1L, "checkpoint_forged"), Broken(report));
    }
}
