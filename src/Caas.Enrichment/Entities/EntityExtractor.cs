namespace Caas.Enrichment.Entities;

/// <summary>
/// Runs every recogniser over a message and keeps one entity per stretch of text: where spans overlap, the more
/// specific type wins (an e-mail over the URL inside it, money over its number, a phone over a number), then the longer span.
/// </summary>
public static class EntityExtractor
{
    /// <summary>Longer messages are cut here: entities in a 100 KB paste are not worth stalling the pipeline for.</summary>
    public const int MaxScannedChars = 20_000;

    private static readonly Dictionary<string, int> Precedence = new()
    {
        [EntityTypes.Email] = 0, [EntityTypes.Url] = 1, [EntityTypes.Money] = 2, [EntityTypes.Phone] = 3,
        [EntityTypes.DateTime] = 4, [EntityTypes.Address] = 5, [EntityTypes.Number] = 6,
    };

    /// <summary>Runs the recognisers in turn; <paramref name="ct"/> (the enrich budget) is checked between them.</summary>
    public static IReadOnlyList<Entity> Extract(string? text, EntityContext context, IReadOnlySet<string>? types = null,
        CancellationToken ct = default)
    {
        if (string.IsNullOrEmpty(text)) return [];
        if (text.Length > MaxScannedChars)
        {
            // Never cut a surrogate pair in half.
            var cut = char.IsHighSurrogate(text[MaxScannedChars - 1]) ? MaxScannedChars - 1 : MaxScannedChars;
            text = text[..cut];
        }
        bool Wanted(string type)
        {
            ct.ThrowIfCancellationRequested();
            return types is null || types.Contains(type);
        }

        var candidates = new List<Entity>();
        if (Wanted(EntityTypes.Email)) candidates.AddRange(EmailRecognizer.Recognize(text));
        if (Wanted(EntityTypes.Url)) candidates.AddRange(UrlRecognizer.Recognize(text));
        if (Wanted(EntityTypes.Money)) candidates.AddRange(MoneyRecognizer.Recognize(text));
        if (Wanted(EntityTypes.Phone)) candidates.AddRange(PhoneRecognizer.Recognize(text, context.DefaultPhoneRegion));
        if (Wanted(EntityTypes.DateTime)) candidates.AddRange(DateTimeRecognizer.Recognize(text, context));
        if (Wanted(EntityTypes.Address)) candidates.AddRange(AddressRecognizer.Recognize(text));
        if (Wanted(EntityTypes.Number)) candidates.AddRange(NumberRecognizer.Recognize(text));
        return Resolve(candidates);
    }

    /// <summary>Keeps the best of overlapping candidates, in text order.</summary>
    public static IReadOnlyList<Entity> Resolve(IEnumerable<Entity> candidates)
    {
        var ordered = candidates
            .OrderBy(e => Precedence.GetValueOrDefault(e.Type, 99))
            .ThenByDescending(e => e.End - e.Start)
            .ThenBy(e => e.Start)
            .ToList();
        if (ordered.Count == 0) return [];
        // Characters already claimed by a kept entity: linear in the text, where comparing every pair was quadratic
        // in the entity count of a message made of nothing but numbers.
        var taken = new bool[ordered.Max(e => e.End) + 1];
        var kept = new List<Entity>();
        foreach (var candidate in ordered)
        {
            if (taken.AsSpan(candidate.Start, candidate.End - candidate.Start).Contains(true)) continue;
            taken.AsSpan(candidate.Start, candidate.End - candidate.Start).Fill(true);
            kept.Add(candidate);
        }
        kept.Sort((a, b) => a.Start.CompareTo(b.Start));
        return kept;
    }
}
