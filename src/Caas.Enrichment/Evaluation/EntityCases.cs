using System.Text.Json;
using Caas.Enrichment.Entities;

namespace Caas.Enrichment.Evaluation;

/// <summary>A message with the entities it should yield; spans are UTF-16, end exclusive.</summary>
public sealed record EntityCase(string Text, IReadOnlyList<ExpectedEntity> Entities);

public sealed record ExpectedEntity(string Type, int Start, int End, string? Value);

/// <summary>
/// Reads entity test sets: the Recognizers-Text spec JSON (a list of {Input, Results[{Text, Start, End, TypeName}]},
/// End inclusive; cases whose NotSupported names dotnet are skipped), and JSONL {"text","entities":[{"type","start","end","value"}]}.
/// </summary>
public static class EntityCaseFile
{
    public static IReadOnlyList<EntityCase> Read(string path)
    {
        var content = File.ReadAllText(path);
        var trimmed = content.TrimStart();
        return trimmed.StartsWith('[') ? ReadRecognizersSpec(content) : ReadJsonLines(content);
    }

    public static IReadOnlyList<EntityCase> ReadJsonLines(string content)
    {
        var cases = new List<EntityCase>();
        foreach (var line in content.Split('\n'))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var text = root.GetProperty("text").GetString() ?? "";
            var expected = new List<ExpectedEntity>();
            if (root.TryGetProperty("entities", out var entities))
            {
                foreach (var e in entities.EnumerateArray())
                {
                    expected.Add(new ExpectedEntity(
                        MapType(e.GetProperty("type").GetString() ?? ""),
                        e.GetProperty("start").GetInt32(),
                        e.GetProperty("end").GetInt32(),
                        e.TryGetProperty("value", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null));
                }
            }
            cases.Add(new EntityCase(text, expected));
        }
        return cases;
    }

    public static IReadOnlyList<EntityCase> ReadRecognizersSpec(string content)
    {
        using var doc = JsonDocument.Parse(content);
        var cases = new List<EntityCase>();
        foreach (var item in doc.RootElement.EnumerateArray())
        {
            if (NotSupportedOnDotnet(item)) continue;
            var text = item.GetProperty("Input").GetString() ?? "";
            var expected = new List<ExpectedEntity>();
            var searchFrom = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            if (item.TryGetProperty("Results", out var results))
            {
                foreach (var r in results.EnumerateArray())
                {
                    var spanText = r.GetProperty("Text").GetString() ?? "";
                    var type = MapType(r.TryGetProperty("TypeName", out var t) ? t.GetString() ?? "" : "");
                    if (type.Length == 0) continue;
                    int start;
                    if (r.TryGetProperty("Start", out var s) && s.ValueKind == JsonValueKind.Number)
                        start = s.GetInt32();
                    else
                    {
                        // Older specs give only the (sometimes lower-cased) text: find its next occurrence.
                        var from = searchFrom.GetValueOrDefault(spanText, 0);
                        start = text.IndexOf(spanText, from, StringComparison.OrdinalIgnoreCase);
                        if (start < 0) continue;
                        searchFrom[spanText] = start + spanText.Length;
                    }
                    var end = r.TryGetProperty("End", out var e) && e.ValueKind == JsonValueKind.Number ? e.GetInt32() + 1 : start + spanText.Length;
                    string? value = null;
                    if (r.TryGetProperty("Resolution", out var res) && res.ValueKind == JsonValueKind.Object && res.TryGetProperty("value", out var v) && v.ValueKind == JsonValueKind.String)
                        value = v.GetString();
                    expected.Add(new ExpectedEntity(type, start, end, value));
                }
            }
            cases.Add(new EntityCase(text, expected));
        }
        return cases;
    }

    private static bool NotSupportedOnDotnet(JsonElement item) =>
        item.TryGetProperty("NotSupported", out var ns) && ns.ValueKind == JsonValueKind.String
        && ns.GetString()!.Contains("dotnet", StringComparison.OrdinalIgnoreCase);

    /// <summary>Maps Recognizers-Text type names onto ours.</summary>
    public static string MapType(string typeName)
    {
        var t = typeName.ToLowerInvariant();
        return t switch
        {
            "phonenumber" or "phone" or "phone_number" => EntityTypes.Phone,
            "email" => EntityTypes.Email,
            "url" => EntityTypes.Url,
            "currency" or "money" => EntityTypes.Money,
            "number" or "ordinal" or "percentage" => EntityTypes.Number,
            "address" => EntityTypes.Address,
            _ when t.StartsWith("datetime") => EntityTypes.DateTime,
            _ => t,
        };
    }
}
