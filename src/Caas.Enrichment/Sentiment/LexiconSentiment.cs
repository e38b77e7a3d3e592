using System.Globalization;
using System.Text;

namespace Caas.Enrichment.Sentiment;

/// <summary>VADER's four numbers: the share of positive, neutral and negative weight, and the normalised compound in -1..1.</summary>
public sealed record LexiconScores(double Positive, double Neutral, double Negative, double Compound);

/// <summary>
/// Rule-based sentiment after VADER (Hutto and Gilbert 2014): word valences, shifted by intensifiers ("very", "kind of"),
/// flipped by negation ("not good"), raised by capitals ("GREAT" in a mixed-case message) and exclamation marks, with
/// the clause after "but" weighted over the one before; emoji and emoticons score from their own lexicons.
/// </summary>
public sealed class LexiconSentiment(SentimentLexicon lexicon)
{
    private const double BoosterIncrement = 0.293;
    private const double BoosterDecrement = -0.293;
    private const double CapsIncrement = 0.733;
    private const double NegationScalar = -0.74;
    private const double NormalisationAlpha = 15;

    private static readonly HashSet<string> Negations = new(StringComparer.OrdinalIgnoreCase)
    {
        "aint", "arent", "cannot", "cant", "couldnt", "darent", "didnt", "doesnt", "ain't", "aren't", "can't", "couldn't",
        "daren't", "didn't", "doesn't", "dont", "hadnt", "hasnt", "havent", "isnt", "mightnt", "mustnt", "neither",
        "don't", "hadn't", "hasn't", "haven't", "isn't", "mightn't", "mustn't", "neednt", "needn't", "never", "none", "nope",
        "nor", "not", "nothing", "nowhere", "oughtnt", "shant", "shouldnt", "uhuh", "wasnt", "werent", "oughtn't", "shan't",
        "shouldn't", "uh-uh", "wasn't", "weren't", "without", "wont", "wouldnt", "won't", "wouldn't", "rarely", "seldom", "despite",
        "n't", "no",
    };

    private static readonly Dictionary<string, double> Boosters = new(StringComparer.OrdinalIgnoreCase)
    {
        ["absolutely"] = BoosterIncrement, ["amazingly"] = BoosterIncrement, ["awfully"] = BoosterIncrement, ["completely"] = BoosterIncrement,
        ["considerably"] = BoosterIncrement, ["decidedly"] = BoosterIncrement, ["deeply"] = BoosterIncrement, ["effing"] = BoosterIncrement,
        ["enormously"] = BoosterIncrement, ["entirely"] = BoosterIncrement, ["especially"] = BoosterIncrement, ["exceptionally"] = BoosterIncrement,
        ["extremely"] = BoosterIncrement, ["fabulously"] = BoosterIncrement, ["flipping"] = BoosterIncrement, ["flippin"] = BoosterIncrement,
        ["fricking"] = BoosterIncrement, ["frickin"] = BoosterIncrement, ["frigging"] = BoosterIncrement, ["friggin"] = BoosterIncrement,
        ["fully"] = BoosterIncrement, ["fucking"] = BoosterIncrement, ["greatly"] = BoosterIncrement, ["hella"] = BoosterIncrement,
        ["highly"] = BoosterIncrement, ["hugely"] = BoosterIncrement, ["incredibly"] = BoosterIncrement, ["intensely"] = BoosterIncrement,
        ["majorly"] = BoosterIncrement, ["more"] = BoosterIncrement, ["most"] = BoosterIncrement, ["particularly"] = BoosterIncrement,
        ["purely"] = BoosterIncrement, ["quite"] = BoosterIncrement, ["really"] = BoosterIncrement, ["remarkably"] = BoosterIncrement,
        ["so"] = BoosterIncrement, ["substantially"] = BoosterIncrement, ["thoroughly"] = BoosterIncrement, ["totally"] = BoosterIncrement,
        ["tremendously"] = BoosterIncrement, ["uber"] = BoosterIncrement, ["unbelievably"] = BoosterIncrement, ["unusually"] = BoosterIncrement,
        ["utterly"] = BoosterIncrement, ["very"] = BoosterIncrement, ["super"] = BoosterIncrement, ["soo"] = BoosterIncrement, ["sooo"] = BoosterIncrement,
        ["almost"] = BoosterDecrement, ["barely"] = BoosterDecrement, ["hardly"] = BoosterDecrement, ["kinda"] = BoosterDecrement,
        ["kindof"] = BoosterDecrement, ["less"] = BoosterDecrement, ["little"] = BoosterDecrement, ["marginally"] = BoosterDecrement,
        ["occasionally"] = BoosterDecrement, ["partly"] = BoosterDecrement, ["scarcely"] = BoosterDecrement, ["slightly"] = BoosterDecrement,
        ["somewhat"] = BoosterDecrement, ["sorta"] = BoosterDecrement, ["sortof"] = BoosterDecrement,
    };

    public LexiconScores Score(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return new LexiconScores(0, 1, 0, 0);
        var tokens = Tokenise(text);
        if (tokens.Count == 0) return new LexiconScores(0, 1, 0, 0);
        var mixedCase = tokens.Any(t => IsShouting(t.Word)) && tokens.Any(t => !IsShouting(t.Word) && t.Word.Any(char.IsLetter));

        var valences = new double[tokens.Count];
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (token.Emoji is not null)
            {
                valences[i] = token.Emoji.Value;
                continue;
            }
            var lower = token.Word.ToLowerInvariant();
            if (Boosters.ContainsKey(lower)) continue;
            if (lower == "kind" && i + 1 < tokens.Count && tokens[i + 1].Word.Equals("of", StringComparison.OrdinalIgnoreCase)) continue;
            if (!lexicon.Words.TryGetValue(lower, out var valence) && !lexicon.Words.TryGetValue(token.Word, out valence)) continue;
            // "no" before a word is handled as negation; alone it is mildly negative.
            if (lower == "no" && i + 1 < tokens.Count && lexicon.Words.ContainsKey(tokens[i + 1].Word.ToLowerInvariant())) continue;

            if (IsShouting(token.Word) && mixedCase) valence += valence > 0 ? CapsIncrement : -CapsIncrement;
            for (var back = 1; back <= 3 && i - back >= 0; back++)
            {
                var previous = tokens[i - back].Word;
                var previousLower = previous.ToLowerInvariant();
                if (Boosters.TryGetValue(previousLower, out var boost) && !lexicon.Words.ContainsKey(previousLower))
                {
                    var scalar = valence < 0 ? -boost : boost;
                    if (IsShouting(previous) && mixedCase) scalar += valence < 0 ? -CapsIncrement : CapsIncrement;
                    valence += scalar * (back == 1 ? 1 : back == 2 ? 0.95 : 0.9);
                }
                if (IsNegation(previousLower))
                    valence *= NegationScalar;
            }
            valences[i] = valence;
        }

        // The clause after "but" carries the message; the one before is softened.
        var butAt = tokens.FindIndex(t => t.Word.Equals("but", StringComparison.OrdinalIgnoreCase));
        if (butAt >= 0)
        {
            for (var i = 0; i < valences.Length; i++)
                valences[i] *= i < butAt ? 0.5 : i > butAt ? 1.5 : 1;
        }

        var sum = valences.Sum();
        var emphasis = PunctuationEmphasis(text);
        if (sum > 0) sum += emphasis;
        else if (sum < 0) sum -= emphasis;
        var compound = sum / Math.Sqrt(sum * sum + NormalisationAlpha);
        compound = Math.Clamp(compound, -1, 1);

        double positive = 0, negative = 0, neutralCount = 0;
        foreach (var v in valences)
        {
            if (v > 0) positive += v + 1;
            else if (v < 0) negative += v - 1;
            else neutralCount += 1;
        }
        if (positive > Math.Abs(negative)) positive += emphasis;
        else if (positive < Math.Abs(negative)) negative -= emphasis;
        var total = positive + Math.Abs(negative) + neutralCount;
        return total == 0
            ? new LexiconScores(0, 1, 0, compound)
            : new LexiconScores(Math.Round(positive / total, 3), Math.Round(neutralCount / total, 3), Math.Round(Math.Abs(negative) / total, 3), Math.Round(compound, 4));
    }

    private static bool IsNegation(string lower) => Negations.Contains(lower) || lower.EndsWith("n't", StringComparison.Ordinal);

    private static bool IsShouting(string word) => word.Length > 1 && word.Any(char.IsLetter) && word.Where(char.IsLetter).All(char.IsUpper);

    private static double PunctuationEmphasis(string text)
    {
        var exclamations = Math.Min(text.Count(c => c == '!'), 4);
        var questions = text.Count(c => c == '?');
        var questionBoost = questions > 1 ? (questions <= 3 ? questions * 0.18 : 0.96) : 0;
        return exclamations * 0.292 + questionBoost;
    }

    private readonly record struct Token(string Word, double? Emoji);

    /// <summary>
    /// Splits on whitespace; strips punctuation around words unless the token is an emoticon in the lexicon (":)", ":-(");
    /// each emoji becomes its own token with its ranking valence, or the words of its description when unranked.
    /// </summary>
    private List<Token> Tokenise(string text)
    {
        var tokens = new List<Token>();
        foreach (var raw in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (lexicon.Words.ContainsKey(raw))
            {
                tokens.Add(new Token(raw, null));
                continue;
            }
            var word = new StringBuilder();
            var enumerator = StringInfo.GetTextElementEnumerator(raw);
            while (enumerator.MoveNext())
            {
                var element = enumerator.GetTextElement();
                if (IsEmoji(element))
                {
                    Flush(word, tokens);
                    var key = SentimentLexicon.StripVariationSelector(element);
                    if (lexicon.Emoji.TryGetValue(key, out var valence)) tokens.Add(new Token(key, valence));
                    else if (lexicon.EmojiDescriptions.TryGetValue(key, out var description) || lexicon.EmojiDescriptions.TryGetValue(element, out description))
                        tokens.AddRange(description.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => new Token(w, null)));
                    continue;
                }
                word.Append(element);
            }
            Flush(word, tokens);
        }
        return tokens;
    }

    private static void Flush(StringBuilder word, List<Token> tokens)
    {
        if (word.Length == 0) return;
        var trimmed = word.ToString().Trim('.', ',', '!', '?', ';', ':', '"', '(', ')', '[', ']', '{', '}', '*', '~');
        word.Clear();
        if (trimmed.Length > 0) tokens.Add(new Token(trimmed, null));
    }

    private static bool IsEmoji(string element)
    {
        var rune = Rune.GetRuneAt(element, 0);
        return rune.Value is >= 0x1F000 and <= 0x1FAFF or >= 0x2600 and <= 0x27BF or >= 0x2B00 and <= 0x2BFF or 0x2764 or 0x263A;
    }
}
