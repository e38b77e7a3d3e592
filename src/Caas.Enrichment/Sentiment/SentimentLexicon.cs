using System.Globalization;
using Caas.Enrichment.Evaluation;

namespace Caas.Enrichment.Sentiment;

/// <summary>
/// Word and emoji valences: the VADER lexicon (-4..4 per word or emoticon), VADER's emoji descriptions, and the
/// Emoji Sentiment Ranking (occurrence counts per emoji, turned into a valence on VADER's scale).
/// </summary>
public sealed class SentimentLexicon
{
    public const string VaderFile = "vader_lexicon.txt";
    public const string EmojiDescriptionsFile = "vader_emoji_utf8_lexicon.txt";
    public const string EmojiRankingFile = "Emoji_Sentiment_Data_v1.0.csv";

    /// <summary>An emoji needs this many observed uses before its ranking is trusted.</summary>
    private const int MinEmojiOccurrences = 10;

    public IReadOnlyDictionary<string, double> Words { get; }
    public IReadOnlyDictionary<string, double> Emoji { get; }
    public IReadOnlyDictionary<string, string> EmojiDescriptions { get; }

    public SentimentLexicon(IReadOnlyDictionary<string, double> words, IReadOnlyDictionary<string, double> emoji, IReadOnlyDictionary<string, string> emojiDescriptions)
    {
        Words = words;
        Emoji = emoji;
        EmojiDescriptions = emojiDescriptions;
    }

    /// <summary>Loads the three lexicon files from a folder (enrichment-data/sentiment).</summary>
    public static SentimentLexicon Load(string directory)
    {
        var words = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(directory, VaderFile)))
        {
            var parts = line.Split('\t');
            if (parts.Length < 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var valence)) continue;
            // The first entry of a duplicated token wins, as in VADER.
            words.TryAdd(parts[0], valence);
        }

        var descriptions = new Dictionary<string, string>(StringComparer.Ordinal);
        var descriptionsPath = Path.Combine(directory, EmojiDescriptionsFile);
        if (File.Exists(descriptionsPath))
        {
            foreach (var line in File.ReadLines(descriptionsPath))
            {
                var tab = line.IndexOf('\t');
                if (tab > 0) descriptions.TryAdd(line[..tab], line[(tab + 1)..]);
            }
        }

        var emoji = new Dictionary<string, double>(StringComparer.Ordinal);
        var rankingPath = Path.Combine(directory, EmojiRankingFile);
        if (File.Exists(rankingPath))
        {
            foreach (var record in LabelledTextFile.ParseCsv(File.ReadAllText(rankingPath)).Skip(1))
            {
                if (record.Count < 7) continue;
                if (!int.TryParse(record[2], out var occurrences) || occurrences < MinEmojiOccurrences) continue;
                var negative = double.Parse(record[4], CultureInfo.InvariantCulture);
                var neutral = double.Parse(record[5], CultureInfo.InvariantCulture);
                var positive = double.Parse(record[6], CultureInfo.InvariantCulture);
                // Sentiment score of Kralj Novak et al., (pos - neg) / n with Laplace smoothing, scaled to VADER's -4..4.
                var score = (positive - negative) / (negative + neutral + positive + 3);
                emoji[StripVariationSelector(record[0])] = Math.Round(score * 4, 3);
            }
        }
        return new SentimentLexicon(words, emoji, descriptions);
    }

    internal static string StripVariationSelector(string s) => s.Replace("\uFE0F", "").Replace("\uFE0E", "");
}
