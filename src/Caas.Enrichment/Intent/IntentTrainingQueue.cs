using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Caas.Enrichment.Evaluation;

namespace Caas.Enrichment.Intent;

/// <summary>A training accepted into the queue: the version it will become.</summary>
public sealed record IntentTrainingTicket(int Version, string Status, Task Completion);

/// <summary>What a trained version measured on the examples held out of its training (null when too few).</summary>
public sealed record IntentTrainingMetrics(double? HeldOutAccuracy, int HeldOutExamples, double TrainingSeconds);

/// <summary>
/// Trains tenants' intent models in the background, one at a time per node, so training never competes with itself
/// for the node's cores. At most <c>capacity</c> trainings wait or run; beyond that <see cref="TrySubmitAsync"/>
/// answers null (the edge answers 429). A version is measured on every tenth example of each intent held out, then
/// trained on all examples, stored, made live for the tenant and published to this node's
/// <see cref="TenantIntentModels"/> at once (other nodes see it at their next version check).
/// </summary>
public sealed class IntentTrainingQueue
{
    private readonly TenantIntentModelStore _store;
    private readonly TenantIntentModels _live;
    private readonly Action<string, Exception?>? _log;
    private readonly Channel<Job> _jobs;
    private readonly int _capacity;
    private int _pending;

    private sealed record Job(string Tenant, int Version, IReadOnlyList<LabelledText> Examples, TaskCompletionSource Done);

    public IntentTrainingQueue(TenantIntentModelStore store, TenantIntentModels live, int capacity = 4, Action<string, Exception?>? log = null)
    {
        _store = store;
        _live = live;
        _log = log;
        _capacity = Math.Max(1, capacity);
        _jobs = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
        // A dedicated thread: ML.NET training is long, synchronous CPU work that should not sit on a pool thread.
        new Thread(Run) { IsBackground = true, Name = "intent-training", Priority = ThreadPriority.BelowNormal }.Start();
    }

    /// <summary>Trainings waiting or running on this node.</summary>
    public int Pending => Volatile.Read(ref _pending);

    public async Task<IntentTrainingTicket?> TrySubmitAsync(string tenant, IReadOnlyList<LabelledText> examples, CancellationToken ct = default)
    {
        if (Interlocked.Increment(ref _pending) > _capacity)
        {
            Interlocked.Decrement(ref _pending);
            return null;
        }
        try
        {
            var labels = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Count();
            var version = await _store.CreateAsync(tenant, examples.Count, labels, ct).ConfigureAwait(false);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _jobs.Writer.TryWrite(new Job(tenant, version, examples, done));
            return new IntentTrainingTicket(version, TenantIntentModelStatus.Training, done.Task);
        }
        catch
        {
            Interlocked.Decrement(ref _pending);
            throw;
        }
    }

    private void Run()
    {
        while (_jobs.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (_jobs.Reader.TryRead(out var job))
            {
                try
                {
                    Train(job);
                    job.Done.TrySetResult();
                }
                catch (Exception e)
                {
                    _log?.Invoke($"training intent model v{job.Version} of tenant {job.Tenant} failed", e);
                    try
                    {
                        _store.FailAsync(job.Tenant, job.Version, e.Message).GetAwaiter().GetResult();
                    }
                    catch (Exception storeFailure)
                    {
                        _log?.Invoke("recording a failed training failed", storeFailure);
                    }
                    job.Done.TrySetException(e);
                }
                finally
                {
                    Interlocked.Decrement(ref _pending);
                }
            }
        }
    }

    private void Train(Job job)
    {
        var watch = Stopwatch.StartNew();
        var metrics = Measure(job.Examples);
        var model = IntentModel.Train(job.Examples, IntentModel.OptionsFor(job.Examples));
        metrics = metrics with { TrainingSeconds = Math.Round(watch.Elapsed.TotalSeconds, 2) };
        var (bytes, info) = model.ToBytes();
        var live = _store.CompleteAsync(job.Tenant, job.Version, bytes, info, JsonSerializer.Serialize(metrics, EnrichmentJson.Options))
            .GetAwaiter().GetResult();
        _live.Publish(job.Tenant, live, model);
    }

    /// <summary>Every tenth example of each intent (in upload order) held out, a model trained on the rest, its accuracy on them (null under 5 held out).</summary>
    public static IntentTrainingMetrics Measure(IReadOnlyList<LabelledText> examples)
    {
        var train = new List<LabelledText>();
        var held = new List<LabelledText>();
        foreach (var group in examples.GroupBy(e => e.Label, StringComparer.Ordinal))
        {
            var i = 0;
            foreach (var e in group) (++i % 10 == 0 ? held : train).Add(e);
        }
        if (held.Count < 5 || train.Select(e => e.Label).Distinct().Count() < 2) return new IntentTrainingMetrics(null, held.Count, 0);
        var model = IntentModel.Train(train, IntentModel.OptionsFor(train));
        var predictions = model.PredictMany(held.Select(e => e.Text));
        var correct = held.Where((e, i) => predictions[i].Intent == e.Label).Count();
        return new IntentTrainingMetrics(Math.Round(correct / (double)held.Count, 4), held.Count, 0);
    }
}
