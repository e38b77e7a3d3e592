using System.Diagnostics;

namespace Caas.Streams.Pipeline;

/// <summary>
/// How long a message entering the graph now would wait for its answer: the messages already inside divided by the
/// rate at which the graph has been answering them lately (over the last couple of seconds). An interactive sender
/// (REST, the hub) whose message would wait past its budget is refused at once with 503 <c>overloaded</c> and a
/// Retry-After, instead of queueing behind a backlog the node cannot clear in time and hearing <c>persist_timeout</c>
/// after seconds: under overload the node then answers fast and persists what it accepts within the budget, rather
/// than accepting everything and confirming nothing in time. Bulk and Kafka ingest are never refused by it.
/// </summary>
public sealed class IngestWaitEstimate
{
    private const int Buckets = 8;
    private static readonly long BucketTicks = Stopwatch.Frequency / 4; // 250 ms: the rate is over the last 2 s

    private readonly Func<long> _now;
    private readonly long[] _answered = new long[Buckets];
    private readonly long[] _bucketOf = new long[Buckets];
    private readonly long _startedAt;
    private readonly object _gate = new();

    /// <param name="now">Stopwatch ticks (a test passes its own clock).</param>
    public IngestWaitEstimate(Func<long>? now = null)
    {
        _now = now ?? Stopwatch.GetTimestamp;
        _startedAt = _now();
    }

    /// <summary>One message answered (persisted or refused inside the graph).</summary>
    public void Answered()
    {
        var bucket = (_now() - _startedAt) / BucketTicks;
        lock (_gate)
        {
            var slot = (int)(bucket % Buckets);
            if (_bucketOf[slot] != bucket)
            {
                _bucketOf[slot] = bucket;
                _answered[slot] = 0;
            }
            _answered[slot]++;
        }
    }

    /// <summary>Messages answered per second over the last 2 s (the current, partial 250 ms excluded).</summary>
    public double AnsweredPerSecond()
    {
        var current = (_now() - _startedAt) / BucketTicks;
        long sum = 0;
        var buckets = 0;
        lock (_gate)
        {
            for (var b = current - Buckets + 1; b < current; b++)
            {
                if (b < 0) continue;
                buckets++;
                var slot = (int)(b % Buckets);
                if (_bucketOf[slot] == b) sum += _answered[slot];
            }
        }
        return buckets == 0 ? 0 : sum / (buckets * (double)BucketTicks / Stopwatch.Frequency);
    }

    /// <summary>
    /// The wait a message entering now should expect with <paramref name="inGraph"/> messages ahead of it, or null when
    /// too few are inside to say (a graph that holds fewer than <paramref name="minInGraph"/> is never called backed up).
    /// </summary>
    public TimeSpan? ExpectedWait(int inGraph, int minInGraph)
    {
        if (inGraph < minInGraph) return null;
        var rate = AnsweredPerSecond();
        // Nothing answered lately with this many inside: as backed up as it gets.
        return rate <= 0 ? TimeSpan.MaxValue : TimeSpan.FromSeconds(inGraph / rate);
    }
}
