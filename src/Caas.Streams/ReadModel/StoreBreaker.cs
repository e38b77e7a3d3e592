using System.Net.Sockets;
using Npgsql;

namespace Caas.Streams.ReadModel;

/// <summary>How the store breaker behaves (data, not constants: tests shorten nothing, operators may).</summary>
public sealed record StoreBreakerSettings
{
    /// <summary>An attempt to get a connection that takes longer than this counts as a failure.</summary>
    public TimeSpan OpenTimeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>How long the breaker stays open before one caller probes the database again.</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Failed opens in a row that open the breaker.</summary>
    public int FailuresToOpen { get; init; } = 2;
}

/// <summary>
/// The database is down (the breaker is open, or getting a connection failed or timed out): the caller answers 503
/// <c>unavailable</c> with <see cref="RetryAfter"/>, at once, instead of waiting on a command timeout.
/// </summary>
public sealed class StoreUnavailableException(string message, TimeSpan retryAfter, Exception? inner = null) : Exception(message, inner)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The circuit breaker in front of every PostgreSQL connection of the read-model store (read-model queries, message-id
/// claims, dead letters, data keys, intent models, the audit access log: they all open connections through
/// <see cref="ReadModelStore"/>). <see cref="StoreBreakerSettings.FailuresToOpen"/> failed opens in a row (an outage
/// error, or no connection within <see cref="StoreBreakerSettings.OpenTimeout"/>) open it; while it is open every open
/// fails at once with <see cref="StoreUnavailableException"/>; after <see cref="StoreBreakerSettings.BreakDuration"/>
/// one caller probes (the others keep failing fast), and a success closes it, so the node recovers by itself when the
/// database returns. Consecutive failures, not a failure ratio: successes from before an outage must not keep it shut.
/// </summary>
public sealed class StoreBreaker(StoreBreakerSettings? settings = null)
{
    private readonly StoreBreakerSettings _settings = settings ?? new StoreBreakerSettings();
    private readonly object _gate = new();
    private int _failures;
    private DateTime _openUntil = DateTime.MinValue;
    private bool _probing;

    /// <summary>Where the breaker says it opened or closed (the host sets it once logging exists).</summary>
    public Action<string>? Log { get; set; }

    /// <summary>True while the breaker refuses calls (not once a probe may go through).</summary>
    public bool IsOpen
    {
        get { lock (_gate) return _failures >= _settings.FailuresToOpen && DateTime.UtcNow < _openUntil; }
    }

    /// <summary>
    /// True from the breaker's opening until a call gets a connection again, half-open included: the database is not
    /// known to be back. A caller that waited past the break (an entity's ask on a loaded node) reads this, not
    /// <see cref="IsOpen"/>, to tell an outage from a busy cluster.
    /// </summary>
    public bool IsDown
    {
        get { lock (_gate) return _failures >= _settings.FailuresToOpen; }
    }

    public TimeSpan RetryAfter => _settings.BreakDuration;

    /// <summary>Gets a connection through the breaker; an outage becomes <see cref="StoreUnavailableException"/>.</summary>
    public async Task<T> OpenAsync<T>(Func<CancellationToken, Task<T>> open, CancellationToken ct)
    {
        var probe = Admit();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_settings.OpenTimeout);
        try
        {
            var connection = await open(timeout.Token);
            Succeeded(probe);
            return connection;
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw Failed(probe, new TimeoutException($"no database connection within {_settings.OpenTimeout}", e));
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Failed(probe, e);
        }
        catch
        {
            Release(probe);
            throw;
        }
    }

    /// <summary>The synchronous open (content-vault key lookups); the connection string's own timeout bounds it.</summary>
    public T Open<T>(Func<T> open)
    {
        var probe = Admit();
        try
        {
            var connection = open();
            Succeeded(probe);
            return connection;
        }
        catch (Exception e) when (IsOutage(e))
        {
            throw Failed(probe, e);
        }
        catch
        {
            Release(probe);
            throw;
        }
    }

    /// <summary>Lets a call through, or refuses it at once; answers whether it is the half-open probe.</summary>
    private bool Admit()
    {
        lock (_gate)
        {
            if (_failures < _settings.FailuresToOpen) return false;
            if (DateTime.UtcNow < _openUntil || _probing)
                throw new StoreUnavailableException("The database is unavailable; retry shortly.", _settings.BreakDuration);
            _probing = true;
            return true;
        }
    }

    private void Succeeded(bool probe)
    {
        bool closed;
        lock (_gate)
        {
            closed = _failures >= _settings.FailuresToOpen;
            _failures = 0;
            if (probe) _probing = false;
        }
        if (closed) Log?.Invoke("database reachable again: store breaker closed");
    }

    private StoreUnavailableException Failed(bool probe, Exception e)
    {
        bool opened;
        lock (_gate)
        {
            _failures++;
            opened = _failures == _settings.FailuresToOpen;
            if (_failures >= _settings.FailuresToOpen) _openUntil = DateTime.UtcNow + _settings.BreakDuration;
            if (probe) _probing = false;
        }
        if (opened) Log?.Invoke($"database unavailable ({e.GetType().Name}: {e.Message}): store breaker open; requests answer 503 unavailable");
        return e as StoreUnavailableException ?? new StoreUnavailableException("The database is unavailable; retry shortly.", _settings.BreakDuration, e);
    }

    private void Release(bool probe)
    {
        if (!probe) return;
        lock (_gate) _probing = false;
    }

    /// <summary>
    /// An error that means the database cannot be reached or is shutting down (as opposed to a bad statement):
    /// sockets, Npgsql timeouts, and PostgreSQL's connection-exception (08), operator-intervention (57P) and
    /// insufficient-resources (53) classes.
    /// </summary>
    public static bool IsOutage(Exception e) => e switch
    {
        StoreUnavailableException => true,
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("57P", StringComparison.Ordinal)
                               || p.SqlState.StartsWith("53", StringComparison.Ordinal),
        NpgsqlException n => n.IsTransient || n.InnerException is SocketException or IOException or TimeoutException,
        SocketException => true,
        _ => e.InnerException is { } inner && IsOutage(inner),
    };
}
