using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment;

/// <summary>
/// The model-backed text enrichers of a running node, built without slowing its start: nothing is loaded or trained in the foreground.
/// Intent answers from the tenant's own model, else the shipped model (<see cref="ShippedIntentModel"/>: loaded, or
/// trained on first start, in the background), else "not applicable". Sentiment runs on the lexicon from the first
/// message (when the lexicon files are found) and switches to the trained model once it has loaded, if there is one.
/// </summary>
public static class NodeEnrichers
{
    public static IntentEnricher CreateIntent(ShippedIntentModel shipped, TenantIntentModels? tenants) =>
        new(() => shipped.Model, tenants);

    /// <summary>
    /// The folder of the sentiment lexicons: the data folder's (CAAS_ENRICH_DATA, else the enrichment-data copy the
    /// build puts beside the binaries); null when it has none (no sentiment enricher).
    /// </summary>
    public static string? LexiconDirectory(EnrichmentOptions options) =>
        options.DataDirectory is { } data && File.Exists(Path.Combine(data, "sentiment", SentimentLexicon.VaderFile))
            ? Path.Combine(data, "sentiment")
            : null;

    public static SentimentEnricher CreateSentiment(EnrichmentOptions options, Action<string, Exception?> log)
    {
        var lexiconDirectory = LexiconDirectory(options)
            ?? throw new DirectoryNotFoundException("no sentiment lexicon: set CAAS_ENRICH_DATA to a folder with sentiment/vader_lexicon.txt");
        var lexicon = new LexiconSentiment(SentimentLexicon.Load(lexiconDirectory));
        var sentiment = new SentimentEnricher(new SentimentAnalyzer(lexicon), "vader");
        var directory = EnrichmentRegistry.SentimentDirectory(options);
        if (SentimentModel.Exists(directory))
            _ = Task.Run(() =>
            {
                try
                {
                    var model = SentimentModel.Load(directory, lexicon);
                    sentiment.Upgrade(new SentimentAnalyzer(lexicon, model), model.Info.Version);
                    log($"sentiment model loaded from {directory}", null);
                }
                catch (Exception e)
                {
                    log($"the sentiment model in {directory} did not load; staying with the lexicon", e);
                }
            });
        return sentiment;
    }
}
