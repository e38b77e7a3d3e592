using Caas.Streams.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

/// <summary>The outbound producer against the real 0.9 broker.</summary>
[Collection("kafka")]
public sealed class KafkaPublisherTests
{
    [Fact]
    public async Task Disposing_the_publisher_while_projections_publish_fails_their_batches_and_keeps_the_process_alive()
    {
        // A node that stops while its outbound projections catch up disposes the publisher under their feet. Before, the
        // next Produce ran on librdkafka's freed handle and the process died of a segmentation fault (seen at the end of
        // `caas bench-pipeline --mode kafka`); a test host that survives this test is the proof.
        var name = KafkaTestBroker.NewName("pubdispose");
        var settings = KafkaTestBroker.Settings(name);
        await KafkaTestBroker.CreateTopicsAsync(2, settings.EventsTopic);
        var publisher = new KafkaPublisher(settings, NullLogger.Instance);
        var records = Enumerable.Range(0, 200)
            .Select(n => new KafkaPublisher.OutboundRecord($"k{n}", $"c{n % 7}", System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{n}}}")))
            .ToList();
        await publisher.PublishAsync(settings.EventsTopic, records);
        var published = new int[4];
        var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var publishers = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await publisher.PublishAsync(settings.EventsTopic, records);
                Interlocked.Increment(ref published[i]);
            }
        })).ToList();
        // Let every loop publish at least once, then dispose in the middle of their batches.
        await KafkaFixtures.WaitUntilAsync(() => published.All(p => p > 0), TimeSpan.FromSeconds(60));
        publisher.Dispose();
        foreach (var task in publishers)
        {
            var e = await Assert.ThrowsAsync<ObjectDisposedException>(() => task.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains(nameof(KafkaPublisher), e.ObjectName ?? e.Message);
        }
        // Later calls fail the same way, at once.
        await Assert.ThrowsAsync<ObjectDisposedException>(() => publisher.PublishAsync(settings.EventsTopic, records));
        publisher.Dispose();
    }
}
