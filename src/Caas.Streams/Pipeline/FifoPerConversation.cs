using Akka.Streams;
using Akka.Streams.Stage;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Runs an asynchronous step on each element, first-in-first-out per conversation key and side by side across keys,
/// and emits each element as soon as its step finishes (out of arrival order across keys). An element starts only
/// after every earlier element of its key has started, and while fewer than <c>perKey</c> of its key and
/// <c>maxRunning</c> in all run; the step is started on the stage's own thread, in that order, so what it sends
/// first (an entity ask) goes out first. A slow or stuck key holds back only its own later elements, which wait
/// (at most <c>maxWaiting</c> of them in all); only when the stage holds <c>maxRunning + maxWaiting</c> elements,
/// running, waiting or finished and not yet pulled, does it stop pulling upstream.
/// A step that throws or fails does not stop the stage: <c>onFailure</c> decides that element, which is emitted.
/// </summary>
public sealed class FifoPerConversation<T> : GraphStage<FlowShape<T, T>>
{
    private readonly Func<T, string> _keyOf;
    private readonly Func<T, Task> _step;
    private readonly Action<T, Exception> _onFailure;
    private readonly int _perKey;
    private readonly int _maxRunning;
    private readonly int _maxWaiting;

    public FifoPerConversation(Func<T, string> keyOf, Func<T, Task> step, Action<T, Exception> onFailure, int perKey, int maxRunning,
        int maxWaiting)
    {
        if (perKey < 1 || maxRunning < 1 || maxWaiting < 0) throw new ArgumentOutOfRangeException(nameof(perKey), "Bounds must be positive.");
        (_keyOf, _step, _onFailure, _perKey, _maxRunning, _maxWaiting) = (keyOf, step, onFailure, perKey, maxRunning, maxWaiting);
        Shape = new FlowShape<T, T>(In, Out);
    }

    public Inlet<T> In { get; } = new("fifo-per-conversation.in");
    public Outlet<T> Out { get; } = new("fifo-per-conversation.out");
    public override FlowShape<T, T> Shape { get; }

    protected override Attributes InitialAttributes { get; } = Attributes.CreateName("fifo-per-conversation");

    protected override GraphStageLogic CreateLogic(Attributes inheritedAttributes) => new Logic(this);

    private sealed class Lane
    {
        public int Running;
        public readonly Queue<T> Waiting = new();
        /// <summary>In <see cref="Logic"/>'s queue of lanes that wait only for a free slot overall.</summary>
        public bool Queued;
    }

    private sealed class Logic : InAndOutGraphStageLogic
    {
        private readonly FifoPerConversation<T> _stage;
        private readonly Dictionary<string, Lane> _lanes = new(StringComparer.Ordinal);
        private readonly Queue<string> _readyLanes = new();
        private readonly Queue<T> _finished = new();
        private readonly Action<(T Element, string Key, Exception? Error)> _onDone;
        private int _running;
        private int _waiting;

        public Logic(FifoPerConversation<T> stage) : base(stage.Shape)
        {
            _stage = stage;
            _onDone = GetAsyncCallback<(T Element, string Key, Exception? Error)>(Done);
            SetHandlers(stage.In, stage.Out, this);
        }

        public override void PreStart() => Pull(_stage.In);

        public override void OnPush()
        {
            var element = Grab(_stage.In);
            var key = _stage._keyOf(element);
            if (!_lanes.TryGetValue(key, out var lane)) _lanes[key] = lane = new Lane();
            if (lane.Waiting.Count == 0 && lane.Running < _stage._perKey && _running < _stage._maxRunning) Start(element, key, lane);
            else
            {
                lane.Waiting.Enqueue(element);
                _waiting++;
                MarkReady(key, lane);
            }
            PullIfRoom();
        }

        public override void OnPull()
        {
            if (_finished.Count > 0) Push(_stage.Out, _finished.Dequeue());
            PullIfRoom();
            CompleteIfDrained();
        }

        public override void OnUpstreamFinish() => CompleteIfDrained();

        private void Start(T element, string key, Lane lane)
        {
            lane.Running++;
            _running++;
            Task task;
            try
            {
                task = _stage._step(element);
            }
            catch (Exception e)
            {
                task = Task.FromException(e);
            }
            task.ContinueWith(t => _onDone((element, key, t.IsCanceled ? new TaskCanceledException(t) : t.Exception?.InnerException ?? t.Exception)),
                TaskContinuationOptions.ExecuteSynchronously);
        }

        private void Done((T Element, string Key, Exception? Error) done)
        {
            if (done.Error is not null)
            {
                try
                {
                    _stage._onFailure(done.Element, done.Error);
                }
                catch (Exception e)
                {
                    FailStage(e);
                    return;
                }
            }
            _running--;
            var lane = _lanes[done.Key];
            lane.Running--;
            _finished.Enqueue(done.Element);
            MarkReady(done.Key, lane);
            StartReady();
            if (lane.Running == 0 && lane.Waiting.Count == 0 && !lane.Queued) _lanes.Remove(done.Key);
            if (IsAvailable(_stage.Out) && _finished.Count > 0) Push(_stage.Out, _finished.Dequeue());
            PullIfRoom();
            CompleteIfDrained();
        }

        /// <summary>A lane with waiting elements and room of its own waits in line for a free slot overall.</summary>
        private void MarkReady(string key, Lane lane)
        {
            if (lane.Queued || lane.Waiting.Count == 0 || lane.Running >= _stage._perKey) return;
            lane.Queued = true;
            _readyLanes.Enqueue(key);
        }

        private void StartReady()
        {
            while (_running < _stage._maxRunning && _readyLanes.Count > 0)
            {
                var key = _readyLanes.Dequeue();
                var lane = _lanes[key];
                lane.Queued = false;
                if (lane.Waiting.Count == 0 || lane.Running >= _stage._perKey) continue;
                _waiting--;
                Start(lane.Waiting.Dequeue(), key, lane);
                MarkReady(key, lane);
            }
        }

        private void PullIfRoom()
        {
            if (_running + _waiting + _finished.Count < _stage._maxRunning + _stage._maxWaiting
                && !HasBeenPulled(_stage.In) && !IsClosed(_stage.In))
                Pull(_stage.In);
        }

        private void CompleteIfDrained()
        {
            if (IsClosed(_stage.In) && _running == 0 && _waiting == 0 && _finished.Count == 0) CompleteStage();
        }
    }
}
