namespace Caas.Enrichment.Entities;

/// <summary>
/// The match timeout every entity pattern runs under. The patterns are written to be linear in the text; the timeout
/// is the backstop that keeps one adversarial message from holding an enrich thread: a pattern that runs over throws
/// <see cref="System.Text.RegularExpressions.RegexMatchTimeoutException"/> (a <see cref="TimeoutException"/>), which
/// the pipeline's enrich stage records as the entities enricher over its budget; the message goes on without entities.
/// </summary>
/// <remarks>A constant because source-generated patterns take their timeout at compile time. It is a backstop for
/// CPU, not the budget: the enrich stage stops waiting for the enricher at its budget (50 ms by default) whatever the
/// patterns do. It sits far above that because on a loaded machine the first large match of a pattern (JIT and
/// on-stack replacement of the generated matcher) was seen to take seconds; the old quadratic date pattern ran for
/// 40 s on one 20,000-character message (the scan limit), and for minutes under load, and still reaches it.</remarks>
public static class EntityPatterns
{
    public const int TimeoutMilliseconds = 30_000;

    public static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(TimeoutMilliseconds);
}
