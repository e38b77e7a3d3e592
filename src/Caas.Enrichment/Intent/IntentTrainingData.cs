using System.Text;
using System.Text.Json;
using Caas.Enrichment.Evaluation;

namespace Caas.Enrichment.Intent;

/// <summary>The two upload formats of a tenant's labelled examples.</summary>
public enum IntentDataFormat
{
    /// <summary>CSV <c>text,intent</c> (RFC 4180 quoting; a header row naming the columns is optional).</summary>
    Csv,
    /// <summary>One JSON object a line: <c>{"text": "...", "intent": "..."}</c>.</summary>
    JsonLines,
}

/// <summary>Why an upload was refused; <see cref="Code"/> is stable (problem+json <c>code</c>).</summary>
public sealed record IntentDataProblem(string Code, string Message, int? Line = null, IReadOnlyDictionary<string, string[]>? Errors = null)
{
    public const string Malformed = "malformed_training_data";
    public const string TooFewLabels = "too_few_labels";
    public const string TooFewExamples = "too_few_examples";
    public const string TooManyExamples = "too_many_examples";
}

/// <summary>Limits of one upload: enough examples to learn something, few enough to train in the background.</summary>
public sealed record IntentDataLimits
{
    public int MinLabels { get; init; } = 2;
    public int MinExamplesPerLabel { get; init; } = 3;
    public int MaxExamples { get; init; } = 50_000;
    public int MaxLabels { get; init; } = 1_000;
    public int MaxTextChars { get; init; } = 1_000;
    public int MaxLabelChars { get; init; } = 100;
}

/// <summary>
/// Parses and checks a tenant's labelled examples. All or nothing: the first bad line is reported with its number
/// (1-based, counting every line of the body) and nothing is kept.
/// </summary>
public static class IntentTrainingData
{
    public static (IReadOnlyList<LabelledText>? Examples, IntentDataProblem? Problem) Parse(string body, IntentDataFormat format, IntentDataLimits? limits = null)
    {
        limits ??= new IntentDataLimits();
        var examples = new List<LabelledText>();
        var problem = format == IntentDataFormat.Csv ? ReadCsv(body, limits, examples) : ReadJsonLines(body, limits, examples);
        return problem is null && Check(examples, limits) is { } tooFew ? (null, tooFew) : problem is null ? (examples, null) : (null, problem);
    }

    private static IntentDataProblem? Check(List<LabelledText> examples, IntentDataLimits limits)
    {
        var counts = examples.GroupBy(e => e.Label, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        if (counts.Count < limits.MinLabels)
            return new IntentDataProblem(IntentDataProblem.TooFewLabels,
                $"At least {limits.MinLabels} different intents are needed; the body has {counts.Count}.");
        if (counts.Count > limits.MaxLabels)
            return new IntentDataProblem(IntentDataProblem.TooManyExamples, $"At most {limits.MaxLabels} different intents; the body has {counts.Count}.");
        var thin = counts.Where(c => c.Value < limits.MinExamplesPerLabel).OrderBy(c => c.Key, StringComparer.Ordinal).ToList();
        if (thin.Count > 0)
            return new IntentDataProblem(IntentDataProblem.TooFewExamples,
                $"Every intent needs at least {limits.MinExamplesPerLabel} examples; {thin.Count} have fewer.",
                Errors: thin.Take(50).ToDictionary(c => c.Key, c => new[] { $"{c.Value} example(s)" }));
        return null;
    }

    private static IntentDataProblem? Add(List<LabelledText> examples, string? text, string? label, int line, IntentDataLimits limits)
    {
        text = text?.Trim();
        label = label?.Trim();
        if (string.IsNullOrEmpty(text)) return Bad(line, "the text is empty");
        if (string.IsNullOrEmpty(label)) return Bad(line, "the intent is empty");
        if (text.Length > limits.MaxTextChars) return Bad(line, $"the text is over {limits.MaxTextChars} characters");
        if (label.Length > limits.MaxLabelChars || label.Any(char.IsControl)) return Bad(line, $"the intent must be 1 to {limits.MaxLabelChars} printable characters");
        if (examples.Count >= limits.MaxExamples)
            return new IntentDataProblem(IntentDataProblem.TooManyExamples, $"At most {limits.MaxExamples} examples in one upload.", line);
        examples.Add(new LabelledText(text, label));
        return null;
    }

    private static IntentDataProblem Bad(int line, string why) =>
        new(IntentDataProblem.Malformed, $"Line {line}: {why}.", line, new Dictionary<string, string[]> { [$"line {line}"] = [why] });

    private static IntentDataProblem? ReadJsonLines(string body, IntentDataLimits limits, List<LabelledText> examples)
    {
        var line = 0;
        using var reader = new StringReader(body);
        while (reader.ReadLine() is { } raw)
        {
            line++;
            if (string.IsNullOrWhiteSpace(raw)) continue;
            string? text, label;
            try
            {
                using var doc = JsonDocument.Parse(raw);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) return Bad(line, "not a JSON object");
                text = StringField(doc.RootElement, "text");
                label = StringField(doc.RootElement, "intent") ?? StringField(doc.RootElement, "label");
            }
            catch (JsonException)
            {
                return Bad(line, "not valid JSON");
            }
            if (Add(examples, text, label, line, limits) is { } problem) return problem;
        }
        return null;
    }

    private static string? StringField(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static IntentDataProblem? ReadCsv(string body, IntentDataLimits limits, List<LabelledText> examples)
    {
        var first = true;
        foreach (var (line, fields, error) in CsvRecords(body))
        {
            if (error is not null) return Bad(line, error);
            if (fields.Count == 1 && fields[0].Length == 0) continue;
            if (first)
            {
                first = false;
                if (fields.Count == 2 && fields[0].Trim().Equals("text", StringComparison.OrdinalIgnoreCase)
                    && fields[1].Trim().ToLowerInvariant() is "intent" or "label" or "category") continue;
            }
            if (fields.Count != 2) return Bad(line, $"expected 2 fields (text,intent), found {fields.Count}");
            if (Add(examples, fields[0], fields[1], line, limits) is { } problem) return problem;
        }
        return null;
    }

    /// <summary>RFC 4180 records with the line each starts on; a quoted field may span lines.</summary>
    private static IEnumerable<(int Line, List<string> Fields, string? Error)> CsvRecords(string content)
    {
        var line = 1;
        var start = 1;
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        var wasQuoted = false;
        for (var i = 0; i < content.Length; i++)
        {
            var c = content[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < content.Length && content[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else
                {
                    if (c == '\n') line++;
                    field.Append(c);
                }
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0 && !wasQuoted:
                    quoted = wasQuoted = true;
                    break;
                case '"':
                    yield return (start, fields, "a quote inside an unquoted field");
                    yield break;
                case ',':
                    fields.Add(field.ToString());
                    field.Clear();
                    wasQuoted = false;
                    break;
                case '\r':
                    break;
                case '\n':
                    fields.Add(field.ToString());
                    yield return (start, fields, null);
                    fields = [];
                    field.Clear();
                    wasQuoted = false;
                    line++;
                    start = line;
                    break;
                default:
                    if (wasQuoted)
                    {
                        yield return (start, fields, "text after a closing quote");
                        yield break;
                    }
                    field.Append(c);
                    break;
            }
        }
        if (quoted)
        {
            yield return (start, fields, "an unterminated quote");
            yield break;
        }
        if (field.Length > 0 || fields.Count > 0 || wasQuoted)
        {
            fields.Add(field.ToString());
            yield return (start, fields, null);
        }
    }
}
