using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Calls;

/// <summary>One quality report of a participant (the browser's <c>getStats</c>); a metric left out is null.</summary>
public sealed record CallQualitySample(double? RttMs, double? JitterMs, double? PacketLossPct, double? BitrateKbps);

/// <summary>Min, max and the sum (for the average) of one metric over a participant's reports that carried it.</summary>
public sealed record MetricStats(int Count, double Min, double Max, double Sum)
{
    public double Avg => Count == 0 ? 0 : Math.Round(Sum / Count, 3);

    public MetricStats Add(double v) => Count == 0 ? new(1, v, v, v) : new(Count + 1, Math.Min(Min, v), Math.Max(Max, v), Sum + v);
}

/// <summary>A participant's quality over the call: how many reports, and each metric's min/avg/max.</summary>
public sealed record ParticipantQuality(string UserId, int Reports, MetricStats? RttMs, MetricStats? JitterMs,
    MetricStats? PacketLossPct, MetricStats? BitrateKbps);

/// <summary>Validation and aggregation of quality reports, pure.</summary>
public static class CallQuality
{
    /// <summary>The accepted ranges: beyond them a report is a client bug, not a bad network.</summary>
    public const double MaxRttMs = 60_000, MaxJitterMs = 60_000, MaxPacketLossPct = 100, MaxBitrateKbps = 1_000_000;

    /// <summary>Null when the sample is usable: at least one metric, each finite and within its range.</summary>
    public static Rejection? Validate(CallQualitySample s)
    {
        var errors = new Dictionary<string, string[]>();
        Check(errors, "rtt_ms", s.RttMs, MaxRttMs);
        Check(errors, "jitter_ms", s.JitterMs, MaxJitterMs);
        Check(errors, "packet_loss_pct", s.PacketLossPct, MaxPacketLossPct);
        Check(errors, "bitrate_kbps", s.BitrateKbps, MaxBitrateKbps);
        if (errors.Count == 0 && s is { RttMs: null, JitterMs: null, PacketLossPct: null, BitrateKbps: null })
            errors["rtt_ms"] = ["At least one of rtt_ms, jitter_ms, packet_loss_pct, bitrate_kbps."];
        return errors.Count == 0 ? null : new Rejection(ErrorCodes.ValidationFailed, "The quality report is not valid.", errors);
    }

    private static void Check(Dictionary<string, string[]> errors, string name, double? v, double max)
    {
        if (v is { } x && (!double.IsFinite(x) || x < 0 || x > max)) errors[name] = [$"A number from 0 to {max}."];
    }

    /// <summary>The participant's aggregate with one more (valid) report.</summary>
    public static ParticipantQuality Add(ParticipantQuality? q, string userId, CallQualitySample s)
    {
        q ??= new ParticipantQuality(userId, 0, null, null, null, null);
        return q with
        {
            Reports = q.Reports + 1,
            RttMs = Add(q.RttMs, s.RttMs),
            JitterMs = Add(q.JitterMs, s.JitterMs),
            PacketLossPct = Add(q.PacketLossPct, s.PacketLossPct),
            BitrateKbps = Add(q.BitrateKbps, s.BitrateKbps),
        };
    }

    private static MetricStats? Add(MetricStats? m, double? v) => v is { } x ? (m ?? new MetricStats(0, 0, 0, 0)).Add(x) : m;

    /// <summary>A call's aggregates, ordered by user id (how they are stored and shown).</summary>
    public static IReadOnlyList<ParticipantQuality> Ordered(ImmutableDictionary<string, ParticipantQuality> byUser) =>
        [.. byUser.Values.OrderBy(q => q.UserId, StringComparer.Ordinal)];

    /// <summary>The wire shape: <c>[{user_id, reports, rtt_ms: {min, avg, max}, …}]</c>.</summary>
    public static object View(IEnumerable<ParticipantQuality>? quality) => (quality ?? []).Select(q => new
    {
        user_id = q.UserId,
        reports = q.Reports,
        rtt_ms = Stats(q.RttMs),
        jitter_ms = Stats(q.JitterMs),
        packet_loss_pct = Stats(q.PacketLossPct),
        bitrate_kbps = Stats(q.BitrateKbps),
    }).ToList();

    private static object? Stats(MetricStats? m) => m is null ? null : new { min = m.Min, avg = m.Avg, max = m.Max, count = m.Count };
}
