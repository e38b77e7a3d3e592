using Akka.Configuration;

namespace Caas.Actors.Sessions;

/// <summary>
/// How message slots are leased to pipelines (HOCON <c>caas.rate-leases</c>): the session entity grants blocks valid
/// for <see cref="ValidFor"/>, at most <see cref="Share"/> of the minute's rate at once, and waits at most
/// <see cref="RecallTimeout"/> for a holder to give slots back; a pipeline asks for <see cref="InitialBlock"/> slots,
/// doubling up to <see cref="MaxBlock"/> while the user keeps using whole blocks.
/// </summary>
public sealed record RateLeaseSettings(TimeSpan ValidFor, TimeSpan RecallTimeout, double Share, int InitialBlock, int MaxBlock)
{
    public static RateLeaseSettings Default { get; } = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), 0.25, 4, 64);

    public static RateLeaseSettings From(Config config)
    {
        var c = config.GetConfig("caas.rate-leases");
        if (c is null || c.IsEmpty) return Default;
        var d = Default;
        return new RateLeaseSettings(c.GetTimeSpan("valid-for", d.ValidFor), c.GetTimeSpan("recall-timeout", d.RecallTimeout),
            c.GetDouble("share", d.Share), Math.Max(1, c.GetInt("initial-block", d.InitialBlock)), Math.Max(1, c.GetInt("max-block", d.MaxBlock)));
    }

    /// <summary>The most slots one lease holds: a share of the rate, so other pipelines of the user rarely need a recall.</summary>
    public int MaxGrant(int limitPerMinute) => Math.Max(1, (int)(limitPerMinute * Share));
}
