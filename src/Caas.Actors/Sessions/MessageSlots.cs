using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

/// <summary>
/// One user's message slots, kept by the session entity (in memory, as the rate windows always were): the spent slots
/// of the sliding minute and hour, as times, and the leases pipelines hold. A leased slot counts as taken until its
/// holder settles (reports it spent, with when, or gives it back), so spent plus leased never exceeds a limit.
/// No actor and no clock inside: the time comes with each call.
/// </summary>
public sealed class MessageSlots
{
    /// <summary>
    /// What the entity knows of one holder's lease since its last settle: <see cref="Pending"/> slots spent on
    /// messages still on their way, and <see cref="Granted"/> slots handed out since, spent or not. <see cref="Settled"/>
    /// orders settles: a pending slot may have come back since a settle older than a request, never since a newer one.
    /// </summary>
    public sealed record Lease(string Holder, string Id, int Pending, int Granted, long ExpiresTicks, long Settled)
    {
        public bool Recalled { get; init; }
        public int Outstanding => Pending + Granted;
    }

    private readonly List<long> _minute = []; // spent-slot times (UTC ticks) of the last minute, sorted, distinct
    private readonly List<long> _hour = []; // the same for the last hour (holds every entry of _minute)
    private readonly Dictionary<string, Lease> _leases = new(); // by holder
    private readonly Dictionary<string, long> _forfeited = new(); // lease id -> until when (ticks) its settle is ignored
    private readonly string _incarnation = Guid.NewGuid().ToString("N")[..8];
    private long _leaseCount;
    private long _settles;

    /// <summary>Settles so far: a request remembers it on arrival to tell older settles from newer ones.</summary>
    public long Settles => _settles;

    public IReadOnlyCollection<Lease> Leases => _leases.Values;

    /// <summary>Nothing spent in the last hour and nothing leased: the entity may passivate.</summary>
    public bool IsIdle => _hour.Count == 0 && _leases.Count == 0;

    public int Outstanding => _leases.Values.Sum(l => l.Outstanding);

    public Lease? LeaseOf(string holder) => _leases.GetValueOrDefault(holder);

    /// <summary>Slots that may still be taken now: the tighter of the two windows, leased slots counted as taken.</summary>
    public int Free(int perMinute, int perHour, DateTimeOffset now)
    {
        Prune(now);
        var outstanding = Outstanding;
        return Math.Min(perMinute - _minute.Count - outstanding, perHour - _hour.Count - outstanding);
    }

    /// <summary>Records one spent slot; a slot at a time already taken moves a tick later, so each can be released alone.</summary>
    public long Record(long ticks)
    {
        var at = _hour.BinarySearch(ticks);
        while (at >= 0) at = _hour.BinarySearch(++ticks);
        _hour.Insert(~at, ticks);
        var inMinute = _minute.BinarySearch(ticks);
        _minute.Insert(~inMinute, ticks);
        return ticks;
    }

    /// <summary>Gives back a slot recorded at <paramref name="ticks"/>; a slot not held changes nothing.</summary>
    public void Release(long ticks)
    {
        if (_minute.BinarySearch(ticks) is var m and >= 0) _minute.RemoveAt(m);
        if (_hour.BinarySearch(ticks) is var h and >= 0) _hour.RemoveAt(h);
    }

    /// <summary>
    /// Settles <paramref name="s"/>'s holder: its reported spent slots join the windows (at now minus how long ago each
    /// was spent), its pending ones stay counted, the rest of its lease comes back. Returns false when that lease was
    /// forfeited: its slots are counted already, so the report is ignored and its pending slots are not carried over.
    /// </summary>
    public bool Settle(LeaseMessageSlots s, DateTimeOffset now, TimeSpan validFor)
    {
        Prune(now);
        var carried = s.LeaseId is null || !_forfeited.ContainsKey(s.LeaseId);
        if (carried)
            foreach (var ago in s.SpentAgo)
                Record(now.UtcTicks - Math.Clamp(ago, 0, UserSessionDecider.CapWindow.Ticks));
        _leases[s.Holder] = new Lease(s.Holder, NewLeaseId(), carried ? Math.Max(0, s.Pending) : 0, 0, (now + validFor).UtcTicks, ++_settles);
        return carried;
    }

    /// <summary>Hands <paramref name="count"/> more slots to a settled holder, valid for <paramref name="validFor"/> from now.</summary>
    public Lease Grant(string holder, int count, DateTimeOffset now, TimeSpan validFor)
    {
        var current = _leases.GetValueOrDefault(holder) ?? new Lease(holder, NewLeaseId(), 0, 0, 0, ++_settles);
        var lease = current with { Granted = current.Granted + count, ExpiresTicks = (now + validFor).UtcTicks, Recalled = false };
        _leases[holder] = lease;
        return lease;
    }

    /// <summary>
    /// The leases, other than <paramref name="except"/>'s, that may hold a free slot for a request that arrived after
    /// <paramref name="arrivedAfter"/> settles: any with slots granted since its settle, and any with pending slots
    /// reported before the request (a message not accepted since gives its slot back to the lease). Pending slots
    /// reported since the request arrived are still on their way: they count as taken, as they always did.
    /// </summary>
    public IReadOnlyList<Lease> Recallable(string? except, long arrivedAfter) =>
        _leases.Values.Where(l => l.Holder != except && (l.Granted > 0 || (l.Pending > 0 && l.Settled <= arrivedAfter))).ToList();

    public void MarkRecalled(Lease lease) => _leases[lease.Holder] = lease with { Recalled = true };

    /// <summary>
    /// A holder that did not answer a recall: every slot of its lease counts as spent at the lease's end, the latest a
    /// holder spends one, so they leave the windows a minute (an hour) after that and never earlier.
    /// </summary>
    public void Forfeit(Lease lease)
    {
        for (var i = 0; i < lease.Outstanding; i++) Record(lease.ExpiresTicks);
        _forfeited[lease.Id] = lease.ExpiresTicks + UserSessionDecider.CapWindow.Ticks;
        _leases.Remove(lease.Holder);
    }

    /// <summary>
    /// The refusal once no slot is free: Retry-After is when enough spent slots have left the window for one more,
    /// slots still leased counted as staying.
    /// </summary>
    public Rejection Refusal(int perMinute, int perHour, DateTimeOffset now)
    {
        Prune(now);
        var outstanding = Outstanding;
        return _minute.Count + outstanding >= perMinute
            ? Limited($"At most {perMinute} messages a minute.", Wait(_minute, outstanding, perMinute, now, UserSessionDecider.RateWindow))
            : Limited($"At most {perHour} messages an hour.", Wait(_hour, outstanding, perHour, now, UserSessionDecider.CapWindow));
    }

    private static TimeSpan Wait(List<long> spent, int outstanding, int limit, DateTimeOffset now, TimeSpan window)
    {
        var mustLeave = spent.Count + outstanding - limit; // the index of the spent slot whose leaving frees one
        if (mustLeave < 0) return TimeSpan.Zero;
        // Only leased slots stand in the way: their messages are on the way and settle within a lease.
        if (mustLeave >= spent.Count) return TimeSpan.FromSeconds(1);
        var wait = new DateTimeOffset(spent[mustLeave], TimeSpan.Zero) + window - now;
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    public static Rejection Limited(string message, TimeSpan wait) =>
        new(ErrorCodes.RateLimited, message, RetryAfterSeconds: Math.Max(1, Math.Ceiling(wait.TotalSeconds)));

    public void Prune(DateTimeOffset now)
    {
        Prune(_minute, (now - UserSessionDecider.RateWindow).UtcTicks);
        Prune(_hour, (now - UserSessionDecider.CapWindow).UtcTicks);
        foreach (var gone in _leases.Values.Where(l => l.Outstanding == 0 && l.ExpiresTicks <= now.UtcTicks && !l.Recalled).ToList())
            _leases.Remove(gone.Holder);
        foreach (var (id, until) in _forfeited.Where(f => f.Value <= now.UtcTicks).ToList()) _forfeited.Remove(id);
    }

    private static void Prune(List<long> ticks, long cutoff)
    {
        var expired = 0;
        while (expired < ticks.Count && ticks[expired] <= cutoff) expired++;
        if (expired > 0) ticks.RemoveRange(0, expired);
    }

    private string NewLeaseId() => $"{_incarnation}-{++_leaseCount}";
}
