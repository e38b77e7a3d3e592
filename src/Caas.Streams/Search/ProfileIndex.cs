using System.Data.Common;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
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

    public const string Live = "search_profiles";
    public const string Next = "search_profiles_next";

    /// <summary>
    /// Applies a batch of user-session events and stores the offset, in one transaction (a replay writes the same rows).
    /// Into <see cref="Next"/> (a rebuild) no offset is stored: the swap sets it.
    /// </summary>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default, string table = Live)
    {
        if (batch.Count == 0) return;
        if (table is not (Live or Next)) throw new ArgumentOutOfRangeException(nameof(table));
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        foreach (var envelope in batch)
        {
            if (!envelope.PersistenceId.StartsWith("user-session|", StringComparison.Ordinal)) continue;
            var (tenant, user) = Ids.SplitEntityId(envelope.PersistenceId["user-session|".Length..]);
            switch (envelope.Event)
            {
                case ProfileUpdated { DisplayName: { } name }:
                    name = name.Trim();
                    if (name.Length == 0) await DeleteAsync(c, tx, tenant, user, ct, table);
                    else
                        await using (var cmd = Command(c, tx,
                                         $"INSERT INTO {table} (tenant_id, user_id, display_name) VALUES (@t, @u, @n) " +
                                         "ON CONFLICT (tenant_id, user_id) DO UPDATE SET display_name = excluded.display_name",
                                         ("t", tenant), ("u", user), ("n", name.Length > MaxDisplayName ? name[..MaxDisplayName] : name)))
                            await cmd.ExecuteNonQueryAsync(ct);
                    break;
                case UserErased:
                    await DeleteAsync(c, tx, tenant, user, ct, table);
                    break;
            }
        }
        if (table == Live) await SaveOffsetAsync(c, tx, ProjectionName, ((Sequence)batch[^1].Offset).Value, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Erasure: the user's display name leaves the index at once (the projection deletes it again at <see cref="UserErased"/>).</summary>
    public async Task<int> EraseUserAsync(string tenant, string user, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        return await DeleteAsync(c, null, tenant, user, ct);
    }

    private static async Task<int> DeleteAsync(DbConnection c, DbTransaction? tx, string tenant, string user, CancellationToken ct, string table = Live)
    {
        await using var cmd = Command(c, tx, $"DELETE FROM {table} WHERE tenant_id = @t AND user_id = @u", ("t", tenant), ("u", user));
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>A rebuild starts: an empty <see cref="Next"/> table (its name index comes with the swap).</summary>
    public async Task ResetNextAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await ReadModelStore.ExecuteAsync(c, $"DROP TABLE IF EXISTS {Next}", ct);
        await ReadModelStore.ExecuteAsync(c,
            $"CREATE TABLE {Next} (tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, display_name TEXT NOT NULL, PRIMARY KEY (tenant_id, user_id))", ct);
    }

    /// <summary>
    /// The rebuilt table replaces the live one and the projection's offset becomes the rebuild's, in one transaction:
    /// a people search sees the old names or the new ones, never none.
    /// </summary>
    public async Task SwapAsync(long offset, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        async Task Exec(string sql)
        {
            await using var cmd = Command(c, tx, sql);
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await Exec($"DROP TABLE IF EXISTS {Live}");
        await Exec($"ALTER TABLE {Next} RENAME TO {Live}");
        if (store.IsPostgres)
        {
            await Exec($"ALTER INDEX {Next}_pkey RENAME TO {Live}_pkey");
            await Exec($"CREATE INDEX IF NOT EXISTS search_profiles_name ON {Live} USING GIN (LOWER(display_name) gin_trgm_ops)");
        }
        await SaveOffsetAsync(c, tx, ProjectionName, offset, ct);
        await tx.CommitAsync(ct);
    }

    public Task<long> LoadOffsetAsync(CancellationToken ct = default) => ReadModelWriter.LoadOffsetAsync(store, ProjectionName, ct);
}

/// <summary>Asks the profile projection to rebuild the display names from the journal's start (swap, not gap).</summary>
public sealed record RebuildProfiles
{
    public static readonly RebuildProfiles Instance = new();
}

/// <summary>Asks how the profile rebuild is going.</summary>
public sealed record GetProfileRebuildStatus
{
    public static readonly GetProfileRebuildStatus Instance = new();
}

/// <param name="Running">A rebuild is under way (the live stream waits for it).</param>
/// <param name="Rebuilds">Rebuilds completed since this node's projection started.</param>
/// <param name="Started">For <see cref="RebuildProfiles"/>: false when one was already running.</param>
public sealed record ProfileRebuildStatus(bool Running, int Rebuilds, bool Started = false);

/// <summary>
/// The profile projection: user-session events by tag into <see cref="ProfileIndex"/>. A cluster singleton. A rebuild
/// (with the search reindex) stops the live stream, reads every user-session event from the journal's start into
/// <see cref="ProfileIndex.Next"/>, swaps it in with the last offset read, and resumes the live stream from there; a
/// failed rebuild leaves the live table as it was and resumes it.
/// </summary>
public sealed class ProfileProjection : ReceiveActor
{
    private const int RebuildBatch = 1000;

    private readonly ProfileIndex _index;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ActorSystem _system = Context.System;
    private readonly IMaterializer _materializer = Context.Materializer();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly OrderedWriter? _ordered;
    private UniqueKillSwitch? _killSwitch;
    private ICancelable? _sweeping;
    private int _liveGeneration, _rebuilds;
    private bool _rebuilding;

    private sealed record RebuildEnded(Exception? Failure);

    /// <param name="repair">Late-commit repair (PostgreSQL; its prefix <c>user-session|</c>), or none.</param>
    public ProfileProjection(ProfileIndex index, ProjectionSettings settings, TagRepair? repair = null)
    {
        _index = index;
        _settings = settings;
        _ordered = OrderedWriter.ForTable(ProfileIndex.ProjectionName, repair, settings, _system, _materializer, list => _index.WriteAsync(list), _log);
        ReceiveAsync<SweepLateCommits>(async _ =>
        {
            if (_rebuilding) return;
            await _writeGate.WaitAsync();
            try
            {
                await _ordered!.SweepOrLogAsync();
            }
            finally
            {
                _writeGate.Release();
            }
        });
        ReceiveAsync<RebuildProfiles>(async _rebuild =>
        {
            if (_rebuilding)
            {
                Sender.Tell(new ProfileRebuildStatus(true, _rebuilds));
                return;
            }
            _rebuilding = true;
            Sender.Tell(new ProfileRebuildStatus(true, _rebuilds, Started: true));
            await StopLiveAsync();
            var self = Self;
            _ = RebuildAsync().ContinueWith(t => self.Tell(new RebuildEnded(t.Exception?.GetBaseException())), TaskScheduler.Default);
        });
        Receive<RebuildEnded>(ended =>
        {
            _rebuilding = false;
            if (ended.Failure is null)
            {
                _rebuilds++;
                _log.Info("Search profiles: rebuilt from the journal");
            }
            else _log.Warning("Search profiles: the rebuild failed, the live table is unchanged: {0}", ended.Failure.Message);
            StartLive();
        });
        Receive<GetProfileRebuildStatus>(_ => Sender.Tell(new ProfileRebuildStatus(_rebuilding, _rebuilds)));
    }

    public static Props PropsFor(ProfileIndex index, ProjectionSettings settings, TagRepair? repair = null) =>
        Props.Create(() => new ProfileProjection(index, settings, repair));

    protected override void PreStart()
    {
        StartLive();
        if (_ordered is not null) _sweeping = _ordered.ScheduleSweeps(_settings, Self, _system.Scheduler);
    }

    protected override void PostStop()
    {
        _sweeping?.Cancel();
        _killSwitch?.Shutdown();
    }

    private void StartLive()
    {
        var generation = Volatile.Read(ref _liveGeneration);
        _killSwitch = ProjectionRunner.Run(ProfileIndex.ProjectionName, UserSessionActor.KindTag, _system, _settings,
            () => _index.LoadOffsetAsync(), async list =>
            {
                await _writeGate.WaitAsync();
                try
                {
                    // A batch of a stream stopped for a rebuild is dropped: the rebuilt table's offset is the rebuild's.
                    if (generation != Volatile.Read(ref _liveGeneration)) return;
                    if (_ordered is null) await _index.WriteAsync(list);
                    else await _ordered.WriteAsync(list);
                }
                finally
                {
                    _writeGate.Release();
                }
            }, _materializer, _log);
    }

    private async Task StopLiveAsync()
    {
        await _writeGate.WaitAsync();
        try
        {
            Interlocked.Increment(ref _liveGeneration);
            _killSwitch?.Shutdown();
            _killSwitch = null;
            // The rebuild's swap sets the offset: sweeps wait for the first batch after it.
            if (_ordered is not null) await _ordered.ResetAsync();
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task RebuildAsync()
    {
        await _index.ResetNextAsync();
        long offset = 0;
        await ProjectionRunner.ReadJournal(_system).CurrentEventsByTag(UserSessionActor.KindTag, Offset.NoOffset())
            .Grouped(RebuildBatch)
            .SelectAsync(1, async batch =>
            {
                var list = batch.ToList();
                await _index.WriteAsync(list, default, ProfileIndex.Next);
                offset = ((Sequence)list[^1].Offset).Value;
                return list.Count;
            })
            .RunWith(Sink.Ignore<int>(), _materializer);
        // Nothing in the journal: the live offset stays where it was (an empty rebuild cannot be ahead of it).
        await _index.SwapAsync(Math.Max(offset, await _index.LoadOffsetAsync()));
    }
}

/// <summary>Registry key of the profile projection singleton.</summary>
public sealed class ProfileProjectionKey;
