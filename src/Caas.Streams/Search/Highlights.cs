using System.Text;

namespace Caas.Streams.Search;

/// <summary>A piece of a field with the matched parts: UTF-16 offsets into <see cref="Fragment"/>, end exclusive.</summary>
public sealed record Highlight(string Field, string Fragment, IReadOnlyList<int[]> Ranges);

/// <summary>
/// Both engines mark matches with control characters (<see cref="Start"/>, <see cref="Stop"/>) that indexed text never
/// holds (<see cref="Clean"/> removes them before indexing); the marks become ranges here, so no HTML reaches a client.
/// </summary>
public static class Highlights
{
    public const char Start = '\u0001', Stop = '\u0002';

    /// <summary>Stands in for '&lt;' while PostgreSQL's ts_headline reads the text (a private-use character).</summary>
    public const char Lt = '\uE000';

    /// <summary>Text as it is indexed: the marker characters removed.</summary>
    public static string Clean(string text) =>
        text.Contains(Start) || text.Contains(Stop) ? text.Replace(Start.ToString(), "").Replace(Stop.ToString(), "") : text;

    public static Highlight FromMarked(string field, string marked)
    {
        var fragment = new StringBuilder(marked.Length);
        var ranges = new List<int[]>();
        var open = -1;
        foreach (var c in marked)
        {
            if (c == Start) open = fragment.Length;
            else if (c == Stop)
            {
                if (open >= 0 && fragment.Length > open) ranges.Add([open, fragment.Length]);
                open = -1;
            }
            else fragment.Append(c);
        }
        if (open >= 0 && fragment.Length > open) ranges.Add([open, fragment.Length]);
        return new Highlight(field, fragment.ToString(), ranges);
    }
}
