using Caas.Enrichment.Intent;
using Caas.Enrichment.Sentiment;

namespace Caas.Enrichment;

/// <summary>
/// The model-backed text enrichers of a running node, built without slowing its start: nothing is trained here.
/// Intent answers from the tenant's own model, else the shipped model if <c>caas train</c> put one in the model
/// directory (loaded in the background), else "not applicable". Sentiment runs on the lexicon from the first
/// message (when the lexicon files are found) and switches to the trained model once it has loaded, if there is one.
/// </summary>
public static class NodeEnrichers
{
    public static IntentEnricher CreateIntent(EnrichmentOptions options, TenantIntentModels? tenants, Action<string, Exception?> log)
    {
        IntentModel? shipped = null;
        var enricher = new IntentEnricher(() => Volatile.Read(ref shipped), tenants);
        var directory = EnrichmentRegistry.IntentDirectory(options);
        if (IntentModel.Exists(directory))
            _ = Task.Run(() =>
            {
                try
                {
                    Volatile.Write(ref shipped, IntentModel.Load(directory));
                    log($"shipped intent model loaded from {directory}", null);
                }
                catch (Exception e)
                {
                    log($"the shipped intent model in {directory} did not load", e);
                }
            });
        return enricher;
    }

    /// <summary>
    /// The folder of the sentiment lexicons: the data folder's (CAAS_ENRICH_DATA or shared/data), else the copy the
    /// build puts beside the binaries (enrichment-data/sentiment); null when neither is there (no sentiment enricher).
    /// </summary>
    public static string? LexiconDirectory(EnrichmentOptions options) =>
        new[] { options.DataDirectory, Path.Combine(AppContext.BaseDirectory, "enrichment-data") }
            .Where(d => d is not null)
            .Select(d => Path.Combine(d!, "sentiment"))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, SentimentLexicon.VaderFile)));

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
