using System.Collections.Concurrent;

namespace Caas.Enrichment.Intent;

/// <summary>A tenant's model as one node holds it in memory.</summary>
public sealed record LiveIntentModel(string TenantId, int Version, IntentModel Model);

/// <summary>
/// The tenants' live intent models on one node. The hot path (<see cref="Get"/>) is a dictionary lookup that never
/// waits for the database: at most every <c>refresh</c> it starts one cheap query for every tenant's live version in
/// the background, and a tenant whose live version differs from the one in memory gets it loaded in the background
/// (one load at a time), answering with the older model, or none, meanwhile. The node that trained a version
/// publishes it at once. Models unused for <c>idleEviction</c> are dropped from memory and load again on demand.
/// </summary>
public sealed class TenantIntentModels
{
    private readonly TenantIntentModelStore _store;
    private readonly TimeSpan _refresh;
    private readonly TimeSpan _idleEviction;
    private readonly Action<string, Exception?>? _log;
    private readonly ConcurrentDictionary<string, LiveIntentVersion> _live = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Entry> _loaded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _loadFailedAt = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private readonly ConcurrentDictionary<string, byte> _loading = new(StringComparer.Ordinal);
    private long _nextPollAt;
    private int _polling;

    public TenantIntentModels(TenantIntentModelStore store, TimeSpan? refresh = null, TimeSpan? idleEviction = null, Action<string, Exception?>? log = null)
    {
        _store = store;
        _refresh = refresh ?? TimeSpan.FromSeconds(3);
        _idleEviction = idleEviction ?? TimeSpan.FromMinutes(30);
        _log = log;
    }

    private sealed class Entry(LiveIntentModel model)
    {
        public LiveIntentModel Model { get; } = model;
        public long LastUsed = Environment.TickCount64;
    }

    /// <summary>The tenant's model in memory, or null; starts whatever background check or load is due.</summary>
    public LiveIntentModel? Get(string tenant)
    {
        PollIfDue();
        _loaded.TryGetValue(tenant, out var entry);
        if (_live.TryGetValue(tenant, out var live) && (entry is null || entry.Model.Version != live.Version)) StartLoad(tenant, live);
        if (entry is null) return null;
        entry.LastUsed = Environment.TickCount64;
        return entry.Model;
    }

    /// <summary>The node that trained (or activated) a version makes it live here at once.</summary>
    public void Publish(string tenant, LiveIntentVersion live, IntentModel model)
    {
        _live.AddOrUpdate(tenant, live, (_, known) => known.ChangedAt > live.ChangedAt ? known : live);
        if (_live[tenant].Version == live.Version) _loaded[tenant] = new Entry(new LiveIntentModel(tenant, live.Version, model));
    }

    /// <summary>Records a newer live version; the model loads in the background on the next message.</summary>
    public void Announce(string tenant, LiveIntentVersion live) =>
        _live.AddOrUpdate(tenant, live, (_, known) => known.ChangedAt > live.ChangedAt ? known : live);

    /// <summary>An activation on this node: the version is loaded and live here before this returns.</summary>
    public async Task ActivateAsync(string tenant, LiveIntentVersion live, CancellationToken ct = default)
    {
        Announce(tenant, live);
        var stored = await _store.LoadAsync(tenant, live.Version, ct).ConfigureAwait(false)
            ?? throw new InvalidDataException($"version {live.Version} of tenant {tenant} is not ready");
        var model = IntentModel.FromBytes(stored.Model, stored.InfoJson);
        model.WarmUp(Environment.ProcessorCount);
        Publish(tenant, live, model);
    }

    /// <summary>Checks the database now and waits for it (tests, and the first message after start-up if wanted).</summary>
    public async Task RefreshAsync(CancellationToken ct = default)
    {
        var versions = await _store.LiveVersionsAsync(ct).ConfigureAwait(false);
        foreach (var (tenant, live) in versions) Announce(tenant, live);
        var now = Environment.TickCount64;
        foreach (var (tenant, entry) in _loaded)
            if (now - Volatile.Read(ref entry.LastUsed) > _idleEviction.TotalMilliseconds) _loaded.TryRemove(tenant, out _);
    }

    private void PollIfDue()
    {
        var now = Environment.TickCount64;
        if (now < Volatile.Read(ref _nextPollAt) || Interlocked.CompareExchange(ref _polling, 1, 0) != 0) return;
        Volatile.Write(ref _nextPollAt, now + (long)_refresh.TotalMilliseconds);
        _ = Task.Run(async () =>
        {
            try
            {
                await RefreshAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _log?.Invoke("intent model version check failed", e);
            }
            finally
            {
                Volatile.Write(ref _polling, 0);
            }
        });
    }

    private void StartLoad(string tenant, LiveIntentVersion live)
    {
        if (_loadFailedAt.TryGetValue(tenant, out var failedAt) && Environment.TickCount64 - failedAt < _refresh.TotalMilliseconds) return;
        if (!_loading.TryAdd(tenant, 0)) return;
        _ = Task.Run(async () =>
        {
            await _loadGate.WaitAsync().ConfigureAwait(false);
            try
            {
                if (_loaded.TryGetValue(tenant, out var current) && current.Model.Version == live.Version) return;
                var stored = await _store.LoadAsync(tenant, live.Version).ConfigureAwait(false);
                if (stored is not { } s) throw new InvalidDataException($"version {live.Version} of tenant {tenant} is not ready");
                var model = IntentModel.FromBytes(s.Model, s.InfoJson);
                model.WarmUp(Environment.ProcessorCount);
                Publish(tenant, live, model);
                _loadFailedAt.TryRemove(tenant, out _);
            }
            catch (Exception e)
            {
                _loadFailedAt[tenant] = Environment.TickCount64;
                _log?.Invoke($"loading intent model v{live.Version} of tenant {tenant} failed", e);
            }
            finally
            {
                _loadGate.Release();
                _loading.TryRemove(tenant, out _);
            }
        });
    }
}
