using Akka;
using Akka.Streams.Dsl;

namespace Caas.Streams.Pipeline;

/// <summary>Stages that hand many elements to one database statement.</summary>
public static class Batches
{
    /// <summary>
    /// Runs <paramref name="step"/> on batches of elements and emits the elements in their order. A batch forms only
    /// while <paramref name="parallelism"/> steps are already running (at most <paramref name="maxBatch"/> elements), so
    /// an element alone waits for no timer, and under load many share one step. When all steps run and the batch forming
    /// is full, upstream waits. A step that fails hands its batch to <paramref name="onFailure"/> and the stream goes on.
    /// </summary>
    public static Flow<T, T, NotUsed> InBatches<T>(int maxBatch, int parallelism, Func<IReadOnlyList<T>, Task> step,
        Action<IReadOnlyList<T>, Exception> onFailure) =>
        Flow.Create<T>()
            .Batch(maxBatch, first => new List<T>(Math.Min(maxBatch, 64)) { first }, (batch, next) =>
            {
                batch.Add(next);
                return batch;
            })
            .SelectAsync(parallelism, async batch =>
            {
                try
                {
                    // Off the graph's thread: a store without real async I/O (Microsoft.Data.Sqlite runs its statements
                    // and their commit synchronously) would otherwise block the whole fused graph for every statement,
                    // and, finishing before the next element arrived, never let a batch form.
                    await Task.Run(() => step(batch));
                }
                catch (Exception e)
                {
                    onFailure(batch, e);
                }
                return batch;
            })
            .SelectMany(batch => batch);
}
