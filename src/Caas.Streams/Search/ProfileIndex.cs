using System.Data.Common;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Streams;
using Caas.Actors.Common;
using Caas.Actors.Sessions;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Search;

/// <summary>
/// Display names from the users' profiles, for the people search: one row per user who has set a display name,
/// projected from the user-session events (<see cref="ProfileUpdated"/> sets or clears it, <see cref="UserErased"/>
/// deletes it), with the projection's offset in the same transaction. PostgreSQL indexes the lower-cased name with
/// <c>pg_trgm</c> (prefix, substring and typo-tolerant matches); SQLite matches by prefix and substring.
/// </summary>
public sealed class ProfileIndex(ReadModelStore store)
{
    public const string ProjectionName = "search-profiles";
    public const int MaxDisplayName = 100;

    public bool IsPostgres => store.IsPostgres;

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await ReadModelStore.ExecuteAsync(c,
            "CREATE TABLE IF NOT EXISTS search_profiles (tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, display_name TEXT NOT NULL, " +
            "PRIMARY KEY (tenant_id, user_id))", ct);
        if (store.IsPostgres)
        {
            await ReadModelStore.ExecuteAsync(c, "CREATE EXTENSION IF NOT EXISTS pg_trgm", ct);
            await ReadModelStore.ExecuteAsync(c,
                "CREATE INDEX IF NOT EXISTS search_profiles_name ON search_profiles USING GIN (LOWER(display_name) gin_trgm_ops)", ct);
        }
    }

    /// <summary>Applies a batch of user-session events and stores the offset, in one transaction (a replay writes the same rows).</summary>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default)
    {
        if (batch.Count == 0) return;
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var envelope in batch)
        {
            if (!envelope.PersistenceId.StartsWith("user-session|", StringComparison.Ordinal)) continue;
            var (tenant, user) = Ids.SplitEntityId(envelope.PersistenceId["user-session|".Length..]);
            switch (envelope.Event)
            {
                case ProfileUpdated { DisplayName: { } name }:
                    name = name.Trim();
                    if (name.Length == 0) await DeleteAsync(c, tx, tenant, user, ct);
                    else
                        await using (var cmd = Command(c, tx,
                                         "INSERT INTO search_profiles (tenant_id, user_id, display_name) VALUES (@t, @u, @n) " +
                                         "ON CONFLICT (tenant_id, user_id) DO UPDATE SET display_name = excluded.display_name",
                                         ("t", tenant), ("u", user), ("n", name.Length > MaxDisplayName ? name[..MaxDisplayName] : name)))
                            await cmd.ExecuteNonQueryAsync(ct);
                    break;
                case UserErased:
                    await DeleteAsync(c, tx, tenant, user, ct);
                    break;
            }
        }
        await using (var cmd = Command(c, tx,
                         "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) " +
                         "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
                         ("name", ProjectionName), ("offset", ((Sequence)batch[^1].Offset).Value)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Erasure: the user's display name leaves the index at once (the projection deletes it again at <see cref="UserErased"/>).</summary>
    public async Task<int> EraseUserAsync(string tenant, string user, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        return await DeleteAsync(c, null, tenant, user, ct);
    }

    private static async Task<int> DeleteAsync(DbConnection c, DbTransaction? tx, string tenant, string user, CancellationToken ct)
    {
        await using var cmd = Command(c, tx, "DELETE FROM search_profiles WHERE tenant_id = @t AND user_id = @u", ("t", tenant), ("u", user));
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task<long> LoadOffsetAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var cmd = Command(c, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", ProjectionName));
        return await cmd.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v) : 0L;
    }
}

/// <summary>The profile projection: user-session events by tag into <see cref="ProfileIndex"/>. A cluster singleton.</summary>
public sealed class ProfileProjection : ReceiveActor
{
    private readonly ProfileIndex _index;
    private readonly ProjectionSettings _settings;
    private UniqueKillSwitch? _killSwitch;

    public ProfileProjection(ProfileIndex index, ProjectionSettings settings)
    {
        _index = index;
        _settings = settings;
        ReceiveAny(_ => { });
    }

    public static Props PropsFor(ProfileIndex index, ProjectionSettings settings) => Props.Create(() => new ProfileProjection(index, settings));

    protected override void PreStart()
    {
        var system = Context.System;
        _killSwitch = ProjectionRunner.Run(ProfileIndex.ProjectionName, UserSessionActor.KindTag, () => ProjectionRunner.ReadJournal(system), _settings,
            () => _index.LoadOffsetAsync(), list => _index.WriteAsync(list), Context.Materializer(), Context.GetLogger());
    }

    protected override void PostStop() => _killSwitch?.Shutdown();
}

/// <summary>Registry key of the profile projection singleton.</summary>
public sealed class ProfileProjectionKey;
