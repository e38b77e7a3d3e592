using Caas.Enrichment.Entities;

namespace Caas.Enrichment.Evaluation;

/// <summary>Exact-span scoring of the entity extractor: an entity counts only with the right type, start and end.</summary>
public sealed record EntityReport(IReadOnlyDictionary<string, PrecisionRecall> PerType, PrecisionRecall Overall, IReadOnlyList<EntityMiss> Misses);

public sealed record EntityMiss(string Text, IReadOnlyList<ExpectedEntity> Expected, IReadOnlyList<Entity> Found);

public static class EntityEvaluation
{
    /// <summary>
    /// Scores only the types the test set labels: a set of phone cases says nothing about the dates in them.
    /// </summary>
    public static EntityReport Run(IReadOnlyList<EntityCase> cases, EntityContext context)
    {
        var typesInSet = cases.SelectMany(c => c.Entities).Select(e => e.Type).ToHashSet();
        var counts = typesInSet.ToDictionary(t => t, _ => new PrecisionRecall(0, 0, 0));
        var misses = new List<EntityMiss>();
        foreach (var c in cases)
        {
            var found = EntityExtractor.Extract(c.Text, context).Where(e => typesInSet.Contains(e.Type)).ToList();
            var expected = c.Entities.Where(e => typesInSet.Contains(e.Type)).ToList();
            var hit = false;
            foreach (var type in typesInSet)
            {
                var f = found.Where(e => e.Type == type).Select(e => (e.Start, e.End)).ToHashSet();
                var x = expected.Where(e => e.Type == type).Select(e => (e.Start, e.End)).ToHashSet();
                var tp = f.Intersect(x).Count();
                counts[type] += new PrecisionRecall(tp, f.Count - tp, x.Count - tp);
                if (tp != f.Count || tp != x.Count) hit = true;
            }
            if (hit) misses.Add(new EntityMiss(c.Text, expected, found));
        }
        var overall = counts.Values.Aggregate(new PrecisionRecall(0, 0, 0), (a, b) => a + b);
        return new EntityReport(counts, overall, misses);
    }
}
