using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Caas.Streams.Operational;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Caas.Web.Turn;

/// <summary>One server as this node sees it: where it came from, the operator's state, and its last check.</summary>
public sealed record TurnServerEntry(string Id, TurnUri Uri, string Source, string State, bool OwnSecret, DateTimeOffset? CreatedAt)
{
    /// <summary>The secret credentials for it are minted with; never leaves this process.</summary>
    internal string? Secret { get; init; }

    public bool Healthy { get; init; }
    public DateTimeOffset? CheckedAt { get; init; }
    public TimeSpan? Latency { get; init; }
    public string? Error { get; init; }

    /// <summary>Handed to clients: active, not deleted, healthy.</summary>
    public bool Listed => State == TurnServerStore.Active && Healthy;
}

/// <summary>
/// The node's TURN/STUN server list: the configured servers (<see cref="TurnSettings"/>) with the operator's overrides
/// and additions from the operational store, each health-checked every interval (<see cref="StunClient"/>). Every node
/// runs its own checks and rereads the store each round, so an operator's change and a server's failure reach every
/// node within an interval or two. Only healthy, active servers are handed out.
/// </summary>
public sealed class TurnServers(TurnSettings settings, IServiceProvider services, ILogger<TurnServers> log) : BackgroundService
{
    private static readonly Gauge HealthyServers = Metrics.CreateGauge("caas_turn_servers_healthy", "TURN/STUN servers that passed their last health check (active or draining).");
    private static readonly Gauge KnownServers = Metrics.CreateGauge("caas_turn_servers", "TURN/STUN servers known to this node (not deleted).");
    private static readonly Histogram CheckSeconds = Metrics.CreateHistogram("caas_turn_health_check_seconds",
        "Time of one server's health check (STUN binding, and TURN allocate + release).",
        new HistogramConfiguration { LabelNames = ["scheme", "result"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });
    private static readonly Counter CredentialsIssued = Metrics.CreateCounter("caas_turn_credentials_issued_total", "ICE server lists with TURN credentials handed out.");

    private readonly SemaphoreSlim _wake = new(0);
    private readonly ConcurrentDictionary<string, TurnServerEntry> _health = new();
    private volatile IReadOnlyList<TurnServerEntry> _current = [];
    private IReadOnlyList<TurnServerRow> _rows = [];
    private bool _storeFailing;

    public TurnSettings Settings => settings;

    /// <summary>Every known server, deleted configuration servers excluded, with its last check.</summary>
    public IReadOnlyList<TurnServerEntry> Current => _current;

    /// <summary>Rounds completed (tests and the admin API wait on it rather than on time).</summary>
    public long Rounds { get; private set; }

    /// <summary>Starts a round now instead of at the next interval (after an operator's change).</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    /// <summary>The id of a configured server: stable across nodes and restarts, derived from its URI.</summary>
    public static string ConfigId(string url) => "cfg_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(url)))[..16];

    /// <summary>
    /// The list for one user, in the shape <c>RTCPeerConnection</c> takes: TURN entries with a REST credential minted
    /// with their server's secret, STUN entries without; a warning when no TURN server is left.
    /// </summary>
    public IceServerList IceServersFor(string userId, DateTimeOffset now)
    {
        var expires = now + settings.Ttl;
        var listed = _current.Where(e => e.Listed).ToList();
        var servers = new List<IceServer>();
        foreach (var e in listed)
        {
            if (!e.Uri.IsTurn)
            {
                servers.Add(new IceServer([e.Uri.Text], null, null));
                continue;
            }
            var (username, credential) = TurnCredentials.Mint(e.Secret!, userId, expires);
            servers.Add(new IceServer([e.Uri.Text], username, credential));
        }
        var turn = listed.Count(e => e.Uri.IsTurn);
        if (turn > 0) CredentialsIssued.Inc();
        string? warning = null;
        if (turn == 0)
            warning = _current.Any(e => e.Uri.IsTurn)
                ? "No TURN server is healthy and active; only what is left (STUN, if any) is listed, so calls behind NATs may fail."
                : "No TURN server is configured; only STUN servers (if any) are listed, so calls behind NATs may fail.";
        return new IceServerList(servers, (long)settings.Ttl.TotalSeconds, warning);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var started = DateTimeOffset.UtcNow;
            try
            {
                await RoundAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                log.LogError(e, "TURN health round failed");
            }
            // Rounds start one interval apart (a round takes at most the check timeout, itself at most an interval).
            var wait = settings.HealthInterval - (DateTimeOffset.UtcNow - started);
            try
            {
                if (wait > TimeSpan.Zero) await _wake.WaitAsync(wait, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round: reread the operator's list, check every server not deleted, publish the result.</summary>
    public async Task RoundAsync(CancellationToken ct)
    {
        var entries = await LoadAsync(ct);
        var checks = entries.Select(async e =>
        {
            var result = await StunClient.ProbeAsync(e.Uri, e.Secret, settings.CheckTimeout, ct);
            CheckSeconds.WithLabels(e.Uri.Scheme, result.Healthy ? "ok" : "failed").Observe(result.Latency.TotalSeconds);
            var key = e.Id + " " + e.Uri.Text;
            var before = _health.TryGetValue(key, out var b) ? b : null;
            if (before is null || before.Healthy != result.Healthy)
            {
                if (result.Healthy) log.LogInformation("TURN server {Id} ({Url}) is healthy", e.Id, e.Uri.Text);
                else log.LogWarning("TURN server {Id} ({Url}) is unhealthy: {Error}", e.Id, e.Uri.Text, result.Error);
            }
            var checkedEntry = e with { Healthy = result.Healthy, CheckedAt = DateTimeOffset.UtcNow, Latency = result.Latency, Error = result.Error };
            _health[key] = checkedEntry;
            return checkedEntry;
        }).ToList();
        var current = await Task.WhenAll(checks);
        foreach (var stale in _health.Keys.Except(current.Select(e => e.Id + " " + e.Uri.Text)).ToList()) _health.TryRemove(stale, out _);
        _current = current;
        HealthyServers.Set(current.Count(e => e.Healthy));
        KnownServers.Set(current.Length);
        Rounds++;
    }

    /// <summary>The configured servers with the operator's overrides, then the operator's own; the store's last answer when it is down.</summary>
    private async Task<List<TurnServerEntry>> LoadAsync(CancellationToken ct)
    {
        if (services.GetService<TurnServerStore>() is { } store)
        {
            try
            {
                _rows = await store.ListAsync(ct);
                if (_storeFailing) log.LogInformation("TURN server list readable again");
                _storeFailing = false;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                if (!_storeFailing) log.LogWarning(e, "TURN server list unreadable; keeping the last one read");
                _storeFailing = true;
            }
        }
        var byId = _rows.ToDictionary(r => r.Id);
        var entries = new List<TurnServerEntry>();
        foreach (var url in settings.Servers.Distinct())
        {
            var id = ConfigId(url);
            var row = byId.GetValueOrDefault(id);
            if (row?.DeletedAt is not null) continue;
            entries.Add(new TurnServerEntry(id, TurnUri.TryParse(url, out _)!, TurnServerStore.FromConfig, row?.State ?? TurnServerStore.Active, false, null)
            {
                Secret = settings.Secret,
            });
        }
        foreach (var row in _rows.Where(r => r.Source == TurnServerStore.FromAdmin && r.DeletedAt is null))
        {
            if (TurnUri.TryParse(row.Url, out _) is not { } uri) continue;
            entries.Add(new TurnServerEntry(row.Id, uri, row.Source, row.State, row.Secret is not null, row.CreatedAt) { Secret = row.Secret ?? settings.Secret });
        }
        return entries;
    }

    /// <summary>The stored rows as of the last round (the admin API resolves ids and URLs with them).</summary>
    internal IReadOnlyList<TurnServerRow> Rows => _rows;

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }
}

/// <summary>An <c>RTCIceServer</c>; a STUN entry has no username or credential (omitted, not null).</summary>
public sealed record IceServer(
    string[] Urls,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Username,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Credential);

public sealed record IceServerList(IReadOnlyList<IceServer> IceServers, long TtlSeconds, string? Warning);
