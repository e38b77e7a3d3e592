namespace Caas.Enrichment.Evaluation;

/// <summary>Precision, recall and F1 from true-positive, false-positive and false-negative counts.</summary>
public sealed record PrecisionRecall(int TruePositives, int FalsePositives, int FalseNegatives)
{
    public double Precision => TruePositives + FalsePositives == 0 ? 0 : (double)TruePositives / (TruePositives + FalsePositives);
    public double Recall => TruePositives + FalseNegatives == 0 ? 0 : (double)TruePositives / (TruePositives + FalseNegatives);
    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);

    public static PrecisionRecall operator +(PrecisionRecall a, PrecisionRecall b) =>
        new(a.TruePositives + b.TruePositives, a.FalsePositives + b.FalsePositives, a.FalseNegatives + b.FalseNegatives);
}

/// <summary>Accuracy and macro-averaged F1 of a classifier over (expected, predicted) label pairs.</summary>
public sealed record ClassificationReport(int Count, double Accuracy, double MacroF1, IReadOnlyDictionary<string, PrecisionRecall> PerLabel)
{
    public static ClassificationReport Of(IReadOnlyList<(string Expected, string Predicted)> pairs)
    {
        var labels = pairs.Select(p => p.Expected).Distinct().ToList();
        var perLabel = labels.ToDictionary(l => l, l => new PrecisionRecall(
            pairs.Count(p => p.Expected == l && p.Predicted == l),
            pairs.Count(p => p.Expected != l && p.Predicted == l),
            pairs.Count(p => p.Expected == l && p.Predicted != l)));
        var accuracy = pairs.Count == 0 ? 0 : pairs.Count(p => p.Expected == p.Predicted) / (double)pairs.Count;
        var macroF1 = perLabel.Count == 0 ? 0 : perLabel.Values.Average(p => p.F1);
        return new ClassificationReport(pairs.Count, accuracy, macroF1, perLabel);
    }
}

public static class CharacterErrorRate
{
    /// <summary>Levenshtein distance between the recognised and the true text over the true text's length.</summary>
    public static (int Edits, int Length) Of(string truth, string recognised)
    {
        var previous = new int[recognised.Length + 1];
        var current = new int[recognised.Length + 1];
        for (var j = 0; j <= recognised.Length; j++) previous[j] = j;
        for (var i = 1; i <= truth.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= recognised.Length; j++)
            {
                var cost = truth[i - 1] == recognised[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return (previous[recognised.Length], truth.Length);
    }

    /// <summary>Collapses runs of whitespace so layout differences (line breaks, double spaces) are not counted as errors.</summary>
    public static string NormaliseWhitespace(string text) =>
        string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
