namespace Caas.Streams.Pipeline;

/// <summary>
/// One enricher's circuit breaker, judged by the caller: closed, it lets every call through and opens after
/// <c>maxFailures</c> failures in a row (a success in between starts the count again); open, it lets nothing through
/// for <c>reset</c>; then one call goes through as a trial (half-open): its success closes the breaker, its failure opens
/// it for another <c>reset</c>, and every other call meanwhile is refused.
/// <para>
/// Unlike Akka's <c>CircuitBreaker</c> it runs nothing and times nothing: the enrich stage tells it how each call ended
/// (<see cref="Succeeded"/>, <see cref="Failed"/>), so a call that answers at once costs no task, token source or
/// timer; only a call that outlives its message's budget is timed, by the stage, to tell a hang from a late answer.
/// </para>
/// </summary>
public sealed class EnricherBreaker
{
    private const int Closed = 0, Open = 1, Trial = 2;

    private readonly int _maxFailures;
    private readonly TimeSpan _reset;
    private readonly TimeProvider _time;
    private readonly Action? _onOpen;
    private readonly Action? _onClose;
    private int _state = Closed;
    private int _failures;
    private long _openedAt;

    public EnricherBreaker(int maxFailures, TimeSpan reset, TimeProvider? time = null, Action? onOpen = null, Action? onClose = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFailures, 1);
        _maxFailures = maxFailures;
        _reset = reset;
        _time = time ?? TimeProvider.System;
        _onOpen = onOpen;
        _onClose = onClose;
    }

    /// <summary>True while calls are refused: open, or half-open with its trial call out.</summary>
    public bool IsOpen => Volatile.Read(ref _state) != Closed;

    /// <summary>
    /// Whether a call may go through now. <paramref name="trial"/> is true for the one call let through after
    /// <c>reset</c>: report its end with the same flag.
    /// </summary>
    public bool TryEnter(out bool trial)
    {
        trial = false;
        switch (Volatile.Read(ref _state))
        {
            case Closed:
                return true;
            case Open when _time.GetElapsedTime(Volatile.Read(ref _openedAt)) >= _reset:
                trial = Interlocked.CompareExchange(ref _state, Trial, Open) == Open;
                return trial;
            default:
                return false;
        }
    }

    /// <summary>The call answered (or stopped when its budget asked it to).</summary>
    public void Succeeded(bool trial)
    {
        if (trial)
        {
            Volatile.Write(ref _failures, 0);
            if (Interlocked.CompareExchange(ref _state, Closed, Trial) == Trial) _onClose?.Invoke();
        }
        else if (Volatile.Read(ref _failures) != 0)
            Volatile.Write(ref _failures, 0);
    }

    /// <summary>The call threw, or was still running after the call timeout.</summary>
    public void Failed(bool trial)
    {
        if (trial)
        {
            Volatile.Write(ref _openedAt, _time.GetTimestamp());
            Interlocked.CompareExchange(ref _state, Open, Trial);
            return;
        }
        if (Interlocked.Increment(ref _failures) < _maxFailures || Volatile.Read(ref _state) != Closed) return;
        Volatile.Write(ref _openedAt, _time.GetTimestamp());
        if (Interlocked.CompareExchange(ref _state, Open, Closed) == Closed) _onOpen?.Invoke();
    }
}
