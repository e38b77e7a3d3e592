using Xunit;

namespace Caas.Enrichment.Tests;

public class EnricherWarmUpTests
{
    [Fact]
    public async Task The_warm_up_runs_every_text_enricher_once_on_a_sample_that_reaches_each_recogniser()
    {
        var enrichers = TestData.TextEnrichers();
        var warmed = await EnricherWarmUp.RunAsync(enrichers, CancellationToken.None);
        Assert.Equal(enrichers.Select(e => e.Name), warmed.Select(w => w.Enricher));
        Assert.All(warmed, w => Assert.Null(w.Error));

        // The sample is worth warming with only if it takes each recogniser past its cheap rejection.
        var entities = (EntitiesPayload)(await enrichers[0].EnrichAsync(EnrichmentInput.ForText(EnricherWarmUp.Sample), CancellationToken.None)).Payload;
        foreach (var type in new[] { "phone", "datetime", "money", "email", "url" })
            Assert.Contains(entities.Entities, e => e.Type == type);
    }
}
