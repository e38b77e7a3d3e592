using Akka.Actor;
using Akka.Event;
using Akka.Pattern;
using Caas.Streams.ReadModel;
using Prometheus;

namespace Caas.Streams.Kafka;

/// <summary>
/// How an outbound projection publishes to its topic: through a circuit breaker (its state in
/// <c>caas_kafka_breaker_state{sink}</c>; a warning when it opens, a note when it closes), and a batch is retried with
/// backoff (the projection's) until the broker acknowledges it, so the projection's offset never passes an
/// unpublished record. One per projection actor: <c>chat.events</c>, <c>media.events</c>, <c>webrtc.recording.events</c>.
/// </summary>
public sealed class KafkaSink
{
    private readonly KafkaPublisher _publisher;
    private readonly string _topic;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log;
    private readonly Counter _published;
    private readonly Counter? _failures;

    public KafkaSink(IScheduler scheduler, KafkaPublisher publisher, KafkaSettings kafka, ProjectionSettings settings, string sink, string topic,
        ILoggingAdapter log, Counter published, Counter? failures = null)
    {
        (_publisher, _topic, _settings, _log, _published, _failures) = (publisher, topic, settings, log, published, failures);
        Breaker = new CircuitBreaker(scheduler, kafka.BreakerMaxFailures, kafka.BreakerCallTimeout, kafka.BreakerReset);
        var gauge = ChatEventsProjection.BreakerState.WithLabels(sink);
        Breaker.OnOpen(() =>
        {
            gauge.Set(2);
            log.Warning("{0} breaker open: the broker is not acknowledging; holding the offset", topic);
        });
        Breaker.OnHalfOpen(() => gauge.Set(1));
        Breaker.OnClose(() =>
        {
            gauge.Set(0);
            log.Info("{0} breaker closed: publishing again", topic);
        });
        gauge.Set(0);
    }

    public CircuitBreaker Breaker { get; }

    /// <summary>Publishes the batch, retrying with backoff until the broker has acknowledged all of it.</summary>
    public async Task PublishAsync(IReadOnlyList<KafkaPublisher.OutboundRecord> records)
    {
        if (records.Count == 0) return;
        var backoff = _settings.MinBackoff;
        while (true)
        {
            try
            {
                await Breaker.WithCircuitBreaker(_ => _publisher.PublishAsync(_topic, records));
                _published.Inc(records.Count);
                return;
            }
            catch (Exception e)
            {
                _failures?.Inc();
                _log.Debug("{0} batch of {1} not published ({2}); retrying in {3}", _topic, records.Count, e.Message, backoff);
                await Task.Delay(backoff);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _settings.MaxBackoff.Ticks));
            }
        }
    }
}
