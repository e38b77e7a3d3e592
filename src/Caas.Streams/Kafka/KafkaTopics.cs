using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;

namespace Caas.Streams.Kafka;

/// <summary>Creates missing topics at start-up: with the AdminClient on a modern broker; a 0.9 broker has no
/// CreateTopics request, so there the broker's auto-create (or the operator) provides them.</summary>
public static class KafkaTopics
{
    public static async Task EnsureAsync(KafkaSettings settings, IReadOnlyCollection<string> topics, ILogger logger)
    {
        if (settings.Profile == KafkaProfile.Compat09)
        {
            logger.LogInformation("Kafka 0.9 profile: topics {Topics} come from the broker's auto-create", string.Join(", ", topics));
            return;
        }
        using var admin = new AdminClientBuilder(settings.AdminConfig()).Build();
        var existing = admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.Where(t => !t.Error.IsError).Select(t => t.Topic).ToHashSet();
        var missing = topics.Where(t => !existing.Contains(t)).Distinct().ToList();
        if (missing.Count == 0) return;
        try
        {
            await admin.CreateTopicsAsync(missing.Select(t => new TopicSpecification
            {
                Name = t,
                NumPartitions = settings.TopicPartitions,
                ReplicationFactor = settings.TopicReplication,
            }), new CreateTopicsOptions { RequestTimeout = TimeSpan.FromSeconds(15) });
            logger.LogInformation("Kafka topics created: {Topics}", string.Join(", ", missing));
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
        {
            // Another node created them first.
        }
        catch (KafkaException e)
        {
            // Not fatal: the consumer waits for its topic, and a broker with auto-create makes it on first use.
            logger.LogWarning("Kafka topics {Topics} could not be created ({Reason}); relying on the broker's auto-create",
                string.Join(", ", missing), e.Error.Reason);
        }
    }
}
