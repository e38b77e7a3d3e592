using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Caas.Enrichment.Context;

/// <summary>Where a conversation stands after one message: whether it switched topic, the topic's intent, and a short summary.</summary>
public sealed record ConversationContextResult(
    bool TopicSwitch,
    double Similarity,
    string? TopicIntent,
    int MessagesInTopic,
    IReadOnlyList<string> KeyTerms,
    string Summary);

/// <summary>Tuning of the topic tracker; the defaults were chosen on CLINC150 validation conversations.</summary>
public sealed record ConversationContextOptions
{
    /// <summary>How many recent messages of the current topic the new one is compared with.</summary>
    public int Window { get; init; } = 6;
    /// <summary>Below this cosine similarity to the recent window, a change of intent is a topic switch.</summary>
    public double SwitchSimilarity { get; init; } = 0.2;
    /// <summary>Conversations tracked at once; the least recently active are forgotten first.</summary>
    public int MaxConversations { get; init; } = 100_000;
    public int SummaryTerms { get; init; } = 5;
}

/// <summary>
/// Per-conversation topic tracker. A message switches topic when its intent differs from the topic's and its words
/// are unlike the last few messages' (bag-of-words cosine), so "and tomorrow?" after a weather question stays on topic.
/// The thread summary names the topic's intent, its most frequent content words, and its most typical message.
/// Thread-safe; state is per conversation and in memory (rebuilt by replay after a restart).
/// </summary>
public sealed partial class ConversationContextTracker(ConversationContextOptions? options = null)
{
    private readonly ConversationContextOptions _options = options ?? new ConversationContextOptions();
    private readonly ConcurrentDictionary<string, Topic> _topics = new();

    private sealed class Topic
    {
        public readonly object Gate = new();
        public string? Intent;
        public int Count;
        public long LastTouched;
        public readonly Queue<Dictionary<string, int>> Recent = new();
        public readonly Dictionary<string, int> Terms = new();
        public readonly List<(string Text, Dictionary<string, int> Bag)> Messages = new();
        // Kept as terms are counted, so that a message costs the same in a topic of ten messages or ten thousand
        // (sorting every term and summing every square per message made it grow with the topic): the sum of the
        // squared term counts (Terms' norm, squared; exact in a long) and the SummaryTerms most frequent terms, in order.
        public long TermsSquares;
        public readonly List<string> Top = new();
    }

    private static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "the", "and", "or", "but", "if", "then", "so", "to", "of", "in", "on", "at", "for", "with", "by", "from",
        "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "have", "has", "had", "i", "me", "my", "you",
        "your", "we", "our", "it", "its", "this", "that", "these", "those", "what", "which", "who", "how", "when", "where",
        "why", "can", "could", "would", "should", "will", "please", "tell", "know", "want", "need", "like", "just", "there",
        "here", "about", "up", "out", "get", "let", "s", "t", "m", "re", "ll", "d", "not", "no", "yes", "ok", "okay", "im",
        "dont", "thanks", "thank", "hi", "hello", "hey", "some", "any", "all", "much", "many", "more", "as", "into", "too",
    };

    [GeneratedRegex(@"[\p{L}\p{N}]+")]
    private static partial Regex Words();

    public ConversationContextResult Observe(string conversationId, string text, string? intent)
    {
        var bag = BagOf(text);
        var topic = _topics.GetOrAdd(conversationId, _ => new Topic());
        ConversationContextResult result;
        lock (topic.Gate)
        {
            topic.LastTouched = Environment.TickCount64;
            var window = Sum(topic.Recent);
            var similarity = Cosine(bag, window);
            var informative = bag.Count > 0 && intent is not null && intent != Intent.IntentModel.OutOfScope;
            var switched = topic.Count > 0 && informative && intent != topic.Intent && similarity < _options.SwitchSimilarity;
            if (switched || topic.Count == 0 || topic.Intent is null && informative)
            {
                if (switched || topic.Count == 0) Reset(topic);
                topic.Intent = informative ? intent : topic.Intent;
            }
            Add(topic, text, bag);
            var keyTerms = topic.Top.ToList();
            result = new ConversationContextResult(switched, Math.Round(similarity, 3), topic.Intent, topic.Count, keyTerms, Summarise(topic, keyTerms));
        }
        if (_topics.Count > _options.MaxConversations) ForgetOldest();
        return result;
    }

    private void Reset(Topic topic)
    {
        topic.Count = 0;
        topic.Recent.Clear();
        topic.Terms.Clear();
        topic.Messages.Clear();
        topic.TermsSquares = 0;
        topic.Top.Clear();
    }

    private void Add(Topic topic, string text, Dictionary<string, int> bag)
    {
        topic.Count++;
        topic.Recent.Enqueue(bag);
        while (topic.Recent.Count > _options.Window) topic.Recent.Dequeue();
        foreach (var (term, n) in bag)
        {
            var before = topic.Terms.GetValueOrDefault(term);
            var after = before + n;
            topic.Terms[term] = after;
            topic.TermsSquares += (long)after * after - (long)before * before;
            Rank(topic, term, after);
        }
        topic.Messages.Add((text.Length > 200 ? text[..200] : text, bag));
        // Only a bounded sample of the topic's messages is kept for picking its most typical one.
        if (topic.Messages.Count > 4 * _options.Window) topic.Messages.RemoveAt(0);
    }

    /// <summary>
    /// Keeps <c>Top</c> the first SummaryTerms of all terms by count (more first), then by ordinal order, after
    /// <paramref name="term"/>'s count rose to <paramref name="count"/>. Counts only rise between resets, so only the
    /// term that rose can enter the list, and it can only push out the last one.
    /// </summary>
    private void Rank(Topic topic, string term, int count)
    {
        if (_options.SummaryTerms <= 0) return;
        var top = topic.Top;
        if (!top.Contains(term))
        {
            if (top.Count >= _options.SummaryTerms)
            {
                if (!Before(topic, term, count, top[^1])) return;
                top.RemoveAt(top.Count - 1);
            }
            top.Add(term);
        }
        // At most SummaryTerms entries: an insertion pass moves the risen term up to its place.
        for (var i = top.IndexOf(term); i > 0 && Before(topic, top[i], topic.Terms[top[i]], top[i - 1]); i--)
            (top[i - 1], top[i]) = (top[i], top[i - 1]);
    }

    private static bool Before(Topic topic, string term, int count, string other)
    {
        var otherCount = topic.Terms[other];
        return count > otherCount || count == otherCount && string.CompareOrdinal(term, other) < 0;
    }

    private static string Summarise(Topic topic, IReadOnlyList<string> terms)
    {
        // The first of the sample's messages most like the whole topic (as a stable sort by similarity would pick).
        var typical = "";
        var best = double.NegativeInfinity;
        var termsNorm = Math.Sqrt(topic.TermsSquares);
        foreach (var (text, bag) in topic.Messages)
        {
            var similarity = Cosine(bag, topic.Terms, termsNorm);
            if (similarity > best)
            {
                best = similarity;
                typical = text;
            }
        }
        var intent = topic.Intent is null ? "general" : topic.Intent.Replace('_', ' ');
        var about = terms.Count > 0 ? $" about {string.Join(", ", terms)}" : "";
        return $"{intent} ({topic.Count} message{(topic.Count == 1 ? "" : "s")}){about}; e.g. \"{typical}\"";
    }

    private void ForgetOldest()
    {
        var excess = _topics.Count - _options.MaxConversations;
        if (excess <= 0) return;
        foreach (var key in _topics.OrderBy(t => t.Value.LastTouched).Take(excess + _options.MaxConversations / 10).Select(t => t.Key).ToList())
            _topics.TryRemove(key, out _);
    }

    public static Dictionary<string, int> BagOf(string? text)
    {
        var bag = new Dictionary<string, int>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(text)) return bag;
        foreach (Match m in Words().Matches(text.ToLowerInvariant()))
        {
            var word = Stem(m.Value);
            if (word.Length < 2 || StopWords.Contains(word)) continue;
            bag[word] = bag.GetValueOrDefault(word) + 1;
        }
        return bag;
    }

    // A light plural and tense strip, so "flights" meets "flight" and "booked" meets "book".
    private static string Stem(string w) =>
        w.Length > 4 && w.EndsWith("ies", StringComparison.Ordinal) ? w[..^3] + "y"
        : w.Length > 4 && w.EndsWith("ing", StringComparison.Ordinal) ? w[..^3]
        : w.Length > 3 && w.EndsWith("ed", StringComparison.Ordinal) ? w[..^2]
        : w.Length > 3 && w.EndsWith('s') && !w.EndsWith("ss", StringComparison.Ordinal) ? w[..^1]
        : w;

    private static Dictionary<string, int> Sum(IEnumerable<Dictionary<string, int>> bags)
    {
        var sum = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var bag in bags)
            foreach (var (term, n) in bag) sum[term] = sum.GetValueOrDefault(term) + n;
        return sum;
    }

    public static double Cosine(IReadOnlyDictionary<string, int> a, IReadOnlyDictionary<string, int> b) =>
        Cosine(a, b, Math.Sqrt(b.Values.Sum(v => (double)v * v)));

    /// <summary>The cosine with <paramref name="b"/>'s norm already known.</summary>
    private static double Cosine(IReadOnlyDictionary<string, int> a, IReadOnlyDictionary<string, int> b, double bNorm)
    {
        if (a.Count == 0 || b.Count == 0) return 0;
        double dot = 0;
        foreach (var (term, n) in a)
            if (b.TryGetValue(term, out var m)) dot += n * m;
        var na = Math.Sqrt(a.Values.Sum(v => (double)v * v));
        return dot / (na * bNorm);
    }
}
