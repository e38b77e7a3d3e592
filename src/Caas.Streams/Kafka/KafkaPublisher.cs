using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Caas.Actors.Serialization;
using Caas.Streams.DeadLetters;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Caas.Streams.Kafka;

/// <summary>
/// The producer side: publishes a batch and completes only when the broker acknowledged every record of it (acks=all).
/// Records go to an explicit partition chosen from their partition key, so a conversation's records stay in order
/// on one partition while their Kafka key is the consumers' dedupe key. Headers only where the profile has them.
/// Disposing it while a projection still publishes (a node stopping while its outbound projections catch up) is safe:
/// librdkafka's handle is freed only when no call is inside it, later calls throw <see cref="ObjectDisposedException"/>,
/// and batches still waiting for the broker fail with it instead of waiting for good. (Before, such a late
/// <c>Produce</c> ran on the freed handle and the process died of a segmentation fault on its way out.)
/// </summary>
public sealed class KafkaPublisher : IDisposable
{
    private readonly KafkaSettings _settings;
    private readonly ILogger _logger;
    private readonly IProducer<string, byte[]> _producer;
    private readonly ConcurrentDictionary<string, int> _partitions = new();
    // Guards the handle: calls into librdkafka hold it for reading, Dispose takes it for writing.
    private readonly ReaderWriterLockSlim _handle = new();
    private readonly ConcurrentDictionary<TaskCompletionSource, byte> _waiting = new();
    private bool _disposed;

    public KafkaPublisher(KafkaSettings settings, ILogger logger)
    {
        _settings = settings;
        _logger = logger;
        var config = settings.ProducerConfig();
        // A batch that cannot be delivered fails in seconds, so the breaker sees the outage (and the offset holds).
        config.MessageTimeoutMs = 10_000;
        _producer = new ProducerBuilder<string, byte[]>(config)
            .SetErrorHandler((_, e) => _logger.LogDebug("Kafka producer: {Reason}", e.Reason))
            .SetLogHandler((_, _) => { })
            .Build();
    }

    /// <param name="Value">The record's value as sent: UTF-8 JSON, written once by the serializer (not a string encoded again).</param>
    public sealed record OutboundRecord(string Key, string PartitionKey, byte[] Value, IReadOnlyDictionary<string, string>? Headers = null);

    /// <summary>Publishes every record; throws when any of them was not acknowledged.</summary>
    public async Task PublishAsync(string topic, IReadOnlyList<OutboundRecord> records)
    {
        if (records.Count == 0) return;
        var partitions = Guarded(() => PartitionCount(topic));
        var pending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[pending] = 0;
        try
        {
            await ProduceAllAsync(topic, records, partitions, pending);
            await pending.Task;
        }
        finally
        {
            _waiting.TryRemove(pending, out _);
        }
    }

    private async Task ProduceAllAsync(string topic, IReadOnlyList<OutboundRecord> records, int partitions, TaskCompletionSource pending)
    {
        var left = records.Count;
        Error? failure = null;
        foreach (var r in records)
        {
            var message = new Message<string, byte[]> { Key = r.Key, Value = r.Value };
            if (_settings.Headers && r.Headers is { Count: > 0 })
            {
                message.Headers = new Headers();
                foreach (var (k, v) in r.Headers) message.Headers.Add(k, Encoding.UTF8.GetBytes(v));
            }
            var tp = new TopicPartition(topic, ChatEventRecord.PartitionFor(r.PartitionKey, partitions));
            void Report(DeliveryReport<string, byte[]> report)
            {
                if (report.Error.IsError) failure ??= report.Error;
                if (Interlocked.Decrement(ref left) == 0)
                {
                    if (failure is { } f) pending.TrySetException(new KafkaException(f));
                    else pending.TrySetResult();
                }
            }
            while (true)
            {
                try
                {
                    ProduceGuarded(tp, message, Report);
                    break;
                }
                catch (ProduceException<string, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    await Task.Delay(10);
                }
            }
        }
    }

    private void ProduceGuarded(TopicPartition tp, Message<string, byte[]> message, Action<DeliveryReport<string, byte[]>> report)
    {
        _handle.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _producer.Produce(tp, message, report);
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    private T Guarded<T>(Func<T> call)
    {
        _handle.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return call();
        }
        finally
        {
            _handle.ExitReadLock();
        }
    }

    /// <summary>Publishes a dead letter to the dead-letter topic, keyed by its id.</summary>
    public Task PublishDeadLetterAsync(DeadLetter letter) => PublishAsync(_settings.DeadLetterTopic,
    [
        new OutboundRecord(letter.Id, letter.TenantId ?? letter.Id, JsonSerializer.SerializeToUtf8Bytes(letter, CaasSerializer.Json),
            new Dictionary<string, string> { ["code"] = letter.Code, ["source"] = letter.Source }),
    ]);

    private int PartitionCount(string topic) => _partitions.GetOrAdd(topic, t =>
    {
        using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
        var meta = admin.GetMetadata(t, TimeSpan.FromSeconds(10)).Topics.Single();
        if (meta.Error.IsError || meta.Partitions.Count == 0)
        {
            _partitions.TryRemove(t, out _);
            throw new KafkaException(meta.Error.IsError ? meta.Error : new Error(ErrorCode.UnknownTopicOrPart, $"topic {t} has no partitions"));
        }
        return meta.Partitions.Count;
    });

    public void Dispose()
    {
        _handle.EnterWriteLock();
        try
        {
            if (_disposed) return;
            _disposed = true;
            _producer.Flush(TimeSpan.FromSeconds(5));
            _producer.Dispose();
        }
        finally
        {
            _handle.ExitWriteLock();
        }
        // Batches the broker did not acknowledge in time will have no delivery report now: they fail (not published,
        // so their projection's offset does not move past them).
        foreach (var waiting in _waiting.Keys) waiting.TrySetException(new ObjectDisposedException(nameof(KafkaPublisher)));
    }
}
