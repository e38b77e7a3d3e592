using System.Text;
using System.Text.Json;

namespace Caas.Enrichment.Evaluation;

/// <summary>One labelled example for a text classifier.</summary>
public sealed record LabelledText(string Text, string Label);

/// <summary>Reads the labelled-text formats of shared/data: JSONL {"text","intent"}, CSV text,category, TSV label&lt;TAB&gt;text.</summary>
public static class LabelledTextFile
{
    public static IReadOnlyList<LabelledText> Read(string path)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        return extension switch
        {
            ".jsonl" or ".json" or ".ndjson" => ReadJsonLines(File.ReadLines(path)),
            ".csv" => ReadCsv(File.ReadAllText(path)),
            ".tsv" or ".txt" => ReadTsv(File.ReadLines(path)),
            _ => throw new InvalidDataException($"unknown labelled-text format '{extension}' (expected .jsonl, .csv or .tsv)"),
        };
    }

    public static IReadOnlyList<LabelledText> ReadJsonLines(IEnumerable<string> lines)
    {
        var rows = new List<LabelledText>();
        foreach (var line in lines)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var text = root.GetProperty("text").GetString() ?? "";
            var label = FirstString(root, "intent", "label", "category", "sentiment")
                ?? throw new InvalidDataException($"no intent/label field in: {line}");
            rows.Add(new LabelledText(text, label));
        }
        return rows;
    }

    private static string? FirstString(JsonElement root, params string[] names)
    {
        foreach (var name in names)
            if (root.TryGetProperty(name, out var value))
                return value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText();
        return null;
    }

    /// <summary>CSV with a header; the first column is the text, the last is the label (RFC 4180 quoting).</summary>
    public static IReadOnlyList<LabelledText> ReadCsv(string content)
    {
        var records = ParseCsv(content).ToList();
        if (records.Count == 0) return [];
        var header = records[0].Select(h => h.Trim().ToLowerInvariant()).ToList();
        var textColumn = Math.Max(0, header.IndexOf("text"));
        var labelColumn = header.FindIndex(h => h is "category" or "label" or "intent");
        if (labelColumn < 0) labelColumn = header.Count - 1;
        return records.Skip(1)
            .Where(r => r.Count > Math.Max(textColumn, labelColumn))
            .Select(r => new LabelledText(r[textColumn], r[labelColumn].Trim()))
            .ToList();
    }

    public static IEnumerable<List<string>> ParseCsv(string content)
    {
        var record = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < content.Length; i++)
        {
            var c = content[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < content.Length && content[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
                continue;
            }
            switch (c)
            {
                case '"': quoted = true; break;
                case ',': record.Add(field.ToString()); field.Clear(); break;
                case '\r': break;
                case '\n':
                    record.Add(field.ToString()); field.Clear();
                    yield return record;
                    record = [];
                    break;
                default: field.Append(c); break;
            }
        }
        if (field.Length > 0 || record.Count > 0)
        {
            record.Add(field.ToString());
            yield return record;
        }
    }

    /// <summary>TSV label&lt;TAB&gt;text; labels 0/1 become negative/positive so every sentiment set speaks one vocabulary.</summary>
    public static IReadOnlyList<LabelledText> ReadTsv(IEnumerable<string> lines)
    {
        var rows = new List<LabelledText>();
        foreach (var line in lines)
        {
            var tab = line.IndexOf('\t');
            if (tab < 0) continue;
            var label = line[..tab].Trim();
            var text = line[(tab + 1)..];
            if (label is "label" or "sentiment") continue;
            rows.Add(new LabelledText(text, NormaliseSentimentLabel(label)));
        }
        return rows;
    }

    public static string NormaliseSentimentLabel(string label) => label.ToLowerInvariant() switch
    {
        "0" or "neg" or "negative" => "negative",
        "1" or "pos" or "positive" => "positive",
        "2" or "neu" or "neutral" => "neutral",
        var other => other,
    };
}
