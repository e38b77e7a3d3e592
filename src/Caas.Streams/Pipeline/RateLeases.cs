using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Sessions;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// This pipeline's leases of message slots, one per user sending through it. The user's UserSession entity stays the
/// authority: it leases slots in blocks, and the pipeline spends them without asking per message. A message that is
/// not accepted gives its slot back to the lease. A lease is settled — accepted slots reported with how long ago each
/// was spent, pending ones counted, the rest returned — when its block runs out (with the ask for the next block), when
/// it ends idle (the sweep), and at once when the entity recalls it because another pipeline of the user needs slots.
/// A lease is spent only within its validity counted from when it was asked for, so a holder that never answers a
/// recall has spent nothing after the entity's end of the lease.
/// </summary>
public sealed class RateLeases
{
    private static readonly Counter Asks = Metrics.CreateCounter("caas_rate_lease_requests_total",
        "Asks to UserSession entities for message slots (lease settles and blocks), by why.", "reason");

    private readonly IActorRef _sessions;
    private readonly RateLeaseSettings _settings;
    private readonly TimeSpan _askTimeout;
    private readonly string _holder;
    private readonly ConcurrentDictionary<string, UserLease> _leases = new();
    private long _requests;

    public RateLeases(ActorSystem system, IActorRef sessions, RateLeaseSettings settings, TimeSpan askTimeout)
    {
        _sessions = sessions;
        _settings = settings;
        _askTimeout = askTimeout;
        var inbox = system.ActorOf(Props.Create(() => new RecallInbox(this)));
        // The full address: the entity may live on another node and recalls by this path.
        _holder = inbox.Path.ToStringWithAddress(((ExtendedActorSystem)system).Provider.DefaultAddress);
        system.Scheduler.Advanced.ScheduleRepeatedly(settings.ValidFor, settings.ValidFor, () => _ = SweepAsync());
    }

    /// <summary>The asks this pipeline made to session entities (blocks, settles, recall answers).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>
    /// Takes a slot for <paramref name="s"/> from its sender's lease (asking the entity for a block when the lease is
    /// spent or over), or returns the refusal. The slot counts as spent once the message is accepted, and goes back to
    /// the lease when it ends any other way.
    /// </summary>
    public async Task<Rejection?> TakeAsync(Submission s)
    {
        var m = s.Message;
        var (slot, refused) = await AcquireAsync(m.TenantId, m.SenderId, s.Tenant.MessageRatePerMinute, s.Tenant.MessageCapPerHour);
        if (slot is not null)
            _ = s.Outcome.ContinueWith(o => slot.Resolve(o.Result is Persisted { Ack.Repeat: false }),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return refused;
    }

    /// <summary>One slot for a message of the user, or the refusal; the caller resolves the slot once the message's fate is known.</summary>
    public async Task<(RateSlot? Slot, Rejection? Refused)> AcquireAsync(string tenantId, string userId, int perMinute, int perHour)
    {
        while (true)
        {
            var lease = _leases.GetOrAdd(Ids.EntityId(tenantId, userId), _ => new UserLease(tenantId, userId, _settings.InitialBlock));
            if (lease.TrySpend() is { } fast) return (fast, null);
            await lease.Gate.WaitAsync();
            try
            {
                if (lease.Retired) continue;
                while (true)
                {
                    if (lease.TrySpend() is { } slot) return (slot, null);
                    var reply = await SettleAsync(lease, lease.NextBlock(_settings.MaxBlock), perMinute, perHour, "block");
                    if (reply is Rejection r) return (null, r);
                }
            }
            finally
            {
                lease.Gate.Release();
            }
        }
    }

    /// <summary>The entity needs this lease's slots for another pipeline: settle now, whatever it holds (even nothing).</summary>
    private async Task RecallAsync(string tenantId, string userId)
    {
        while (true)
        {
            var lease = _leases.GetOrAdd(Ids.EntityId(tenantId, userId), _ => new UserLease(tenantId, userId, _settings.InitialBlock));
            await lease.Gate.WaitAsync();
            try
            {
                if (lease.Retired) continue;
                await SettleAsync(lease, 0, lease.PerMinute, lease.PerHour, "recall");
                return;
            }
            finally
            {
                lease.Gate.Release();
            }
        }
    }

    /// <summary>Settles leases past their validity that still hold slots or unreported spends, and forgets empty ones.</summary>
    private async Task SweepAsync()
    {
        foreach (var (key, lease) in _leases)
        {
            if (!lease.IsOver(_settings.ValidFor) || !await lease.Gate.WaitAsync(0)) continue;
            try
            {
                if (lease.Retired || !lease.IsOver(_settings.ValidFor)) continue;
                if (lease.HoldsAnything) await SettleAsync(lease, 0, lease.PerMinute, lease.PerHour, "expiry");
                if (lease.TryRetire()) _leases.TryRemove(key, out _);
            }
            catch (Exception)
            {
                // The next sweep (or the next message) settles it; nothing spent is lost, it stays counted.
            }
            finally
            {
                lease.Gate.Release();
            }
        }
    }

    /// <summary>One ask to the entity, under the lease's gate: report, return, and take up to <paramref name="wanted"/> more.</summary>
    private async Task<object> SettleAsync(UserLease lease, int wanted, int perMinute, int perHour, string reason)
    {
        var report = lease.BeginSettle(perMinute, perHour);
        Interlocked.Increment(ref _requests);
        Asks.WithLabels(reason).Inc();
        object reply;
        try
        {
            reply = await _sessions.Ask<object>(new LeaseMessageSlots(lease.TenantId, lease.UserId, _holder, report.LeaseId,
                report.SpentAgo, report.Pending, wanted, perMinute, perHour), _askTimeout);
        }
        catch (AskTimeoutException)
        {
            reply = new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry with the same message_id.", RetryAfterSeconds: 1);
        }
        if (reply is MessageSlotsLeased leased) lease.EndSettle(leased, report, _settings.ValidFor);
        else lease.AbortSettle(report);
        return reply;
    }

    /// <summary>A slot taken from a lease; resolved once: accepted (spent for good) or not (back to the lease).</summary>
    public sealed class RateSlot
    {
        private readonly UserLease _lease;
        private readonly long _generation;
        private int _resolved;

        internal RateSlot(UserLease lease, long generation, long spentAt)
        {
            _lease = lease;
            _generation = generation;
            SpentAt = spentAt;
        }

        internal long SpentAt { get; }

        public void Resolve(bool accepted)
        {
            if (Interlocked.Exchange(ref _resolved, 1) == 0) _lease.Resolve(this, _generation, accepted);
        }
    }

    internal readonly record struct SettleReport(string? LeaseId, ImmutableArray<long> SpentAgo, List<long> Spent, int Pending, long SentAt);

    /// <summary>
    /// One user's lease in this pipeline. The entity counts what it handed out: slots free here, slots pending (spent on
    /// a message still on its way) and slots spent but not yet reported, until a settle tells it which is which.
    /// </summary>
    internal sealed class UserLease(string tenantId, string userId, int initialBlock)
    {
        private readonly object _lock = new();
        private readonly List<long> _spent = []; // accepted slots not yet reported: when each was spent (Stopwatch)
        private string? _id;
        private int _free;
        private int _pending;
        private long _generation; // a forfeited lease's pending slots belong to an old generation and come back to nothing
        private long _validUntil; // Stopwatch timestamp
        private readonly int _initialBlock = initialBlock;
        private int _block = initialBlock;
        private bool _ranOut;

        public string TenantId { get; } = tenantId;
        public string UserId { get; } = userId;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public bool Retired { get; private set; }
        public int PerMinute { get; private set; }
        public int PerHour { get; private set; }

        public RateSlot? TrySpend()
        {
            lock (_lock)
            {
                var now = Stopwatch.GetTimestamp();
                if (_free == 0 || now >= _validUntil)
                {
                    _ranOut = now < _validUntil;
                    return null;
                }
                _free--;
                _pending++;
                return new RateSlot(this, _generation, now);
            }
        }

        /// <summary>The block to ask for: doubled when the last one ran out while still valid (a busy sender), else the first size.</summary>
        public int NextBlock(int max)
        {
            lock (_lock)
            {
                _block = _ranOut ? Math.Min(max, _block * 2) : _initialBlock;
                _ranOut = false;
                return _block;
            }
        }

        public void Resolve(RateSlot slot, long generation, bool accepted)
        {
            lock (_lock)
            {
                if (generation != _generation) return;
                _pending--;
                if (accepted) _spent.Add(slot.SpentAt);
                else _free++;
            }
        }

        public bool IsOver(TimeSpan validFor)
        {
            lock (_lock) return Stopwatch.GetTimestamp() >= _validUntil;
        }

        public bool HoldsAnything
        {
            get { lock (_lock) return _free > 0 || _spent.Count > 0; }
        }

        /// <summary>Nothing held, pending or unreported: the lease can be forgotten (a later message starts a new one).</summary>
        public bool TryRetire()
        {
            lock (_lock)
            {
                if (_free > 0 || _pending > 0 || _spent.Count > 0) return false;
                Retired = true;
                return true;
            }
        }

        /// <summary>Everything free goes back with this settle; accepted slots are reported as how long ago they were spent.</summary>
        public SettleReport BeginSettle(int perMinute, int perHour)
        {
            lock (_lock)
            {
                if (perMinute > 0) (PerMinute, PerHour) = (perMinute, perHour);
                var sentAt = Stopwatch.GetTimestamp();
                var spent = _spent.ToList();
                _spent.Clear();
                _free = 0;
                return new SettleReport(_id, [.. spent.Select(t => Stopwatch.GetElapsedTime(t, sentAt).Ticks)], spent, _pending, sentAt);
            }
        }

        public void EndSettle(MessageSlotsLeased leased, SettleReport report, TimeSpan validFor)
        {
            lock (_lock)
            {
                if (!leased.Carried)
                {
                    // The entity counted the forfeited lease whole: what it still had here is no longer ours.
                    _generation++;
                    _pending = 0;
                    _spent.Clear();
                    _free = 0;
                }
                _id = leased.LeaseId;
                _free += leased.Granted;
                // Counted from the ask, never from the answer: the entity's end of the lease is never earlier.
                _validUntil = report.SentAt + (long)(Math.Min(validFor.TotalSeconds, leased.ValidFor.TotalSeconds) * Stopwatch.Frequency);
            }
        }

        /// <summary>No answer: what was reported may not have arrived, so it is reported again (counted twice at worst, never lost).</summary>
        public void AbortSettle(SettleReport report)
        {
            lock (_lock) _spent.InsertRange(0, report.Spent);
        }
    }

    /// <summary>Receives the entities' recalls for this pipeline.</summary>
    private sealed class RecallInbox : ReceiveActor
    {
        public RecallInbox(RateLeases leases) =>
            Receive<RecallMessageSlots>(r => _ = leases.RecallAsync(r.TenantId, r.UserId));
    }
}
