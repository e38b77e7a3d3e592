using Xunit;

namespace Caas.Enrichment.Tests;

public class RegistryTests
{
    [Fact]
    public async Task Without_models_the_registry_serves_the_lexicon_and_rule_based_enrichers()
    {
        var options = new EnrichmentOptions
        {
            ModelDirectory = TestData.NewTempDirectory(),
            DataDirectory = TestData.SharedData,
            TrainMissingModels = false,
        };
        var registry = EnrichmentRegistry.CreateDefault(options);
        Assert.Null(registry.Intents);
        Assert.False(registry.Sentiment.HasModel);
        Assert.Equal(["entities", "sentiment", "conversation-context"], registry.TextEnrichers.Select(e => e.Name));
        Assert.Equal(["ocr", "document-text", "speech"], registry.AttachmentEnrichers.Select(e => e.Name));
        Assert.Equal(registry.Enrichers.Count, registry.Enrichers.Select(e => e.Name).Distinct().Count());

        var sentiment = await registry.Find("sentiment")!.EnrichAsync(EnrichmentInput.ForText("this is great 😀"), CancellationToken.None);
        Assert.Equal("1.0.0+vader", sentiment.Version);
        Assert.Equal("attachment_empty", (await registry.ReadImageAsync(Array.Empty<byte>())).ErrorCode);
        Assert.Equal("unsupported_content_type", registry.ReadDocument(new byte[] { 1, 2, 3 }).ErrorCode);
    }

    [Fact]
    public void A_missing_data_folder_is_a_clear_error()
    {
        var options = new EnrichmentOptions { ModelDirectory = TestData.NewTempDirectory(), DataDirectory = TestData.NewTempDirectory() };
        var error = Assert.Throws<DirectoryNotFoundException>(() => EnrichmentRegistry.CreateDefault(options));
        Assert.Contains("CAAS_ENRICH_DATA", error.Message);
    }
}
