using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

/// <summary>Decisions on the persisted part of a session, and the sliding-window rate rule.</summary>
public static class UserSessionDecider
{
    public static readonly TimeSpan RateWindow = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan CapWindow = TimeSpan.FromHours(1);

    public static (IUserSessionEvent? Event, object Reply) Decide(UserSessionState s, IUserSessionCommand command, DateTimeOffset now)
    {
        var meta = new EventMeta(command.TenantId, command.UserId, now);
        switch (command)
        {
            case MarkRead m when m.Seq < 0:
                return (null, Rejection.Invalid("seq", "Must be zero or more."));
            case MarkRead m:
                // Read markers only move forward: a late or repeated receipt changes nothing.
                var current = s.ReadMarkers.GetValueOrDefault(m.ConversationId);
                return m.Seq <= current
                    ? (null, new ReadMarker(m.ConversationId, current))
                    : (new ReadMarked(meta, m.ConversationId, m.Seq), new ReadMarker(m.ConversationId, m.Seq));
            case MarkDelivered d when d.EventSeq < 0:
                return (null, Rejection.Invalid("event_seq", "Must be zero or more."));
            case MarkDelivered d:
                // Cumulative, so only forward: a late or repeated acknowledgement changes nothing.
                var delivered = s.DeliveredMarkers.GetValueOrDefault(d.ConversationId);
                return d.EventSeq <= delivered
                    ? (null, new DeliveredMarker(d.ConversationId, delivered))
                    : (new DeliveredMarked(meta, d.ConversationId, d.EventSeq), new DeliveredMarker(d.ConversationId, d.EventSeq));
            case GetDeliveredMarker g:
                return (null, new DeliveredMarker(g.ConversationId, s.DeliveredMarkers.GetValueOrDefault(g.ConversationId)));
            case UpdateProfile u:
                if (u.DisplayName is { Length: > 100 }) return (null, Rejection.Invalid("display_name", "At most 100 characters."));
                // Windows ids are found too (converted), but then mean different things on different nodes' systems.
                if (u.TimeZone is not null && !(TimeZoneInfo.TryFindSystemTimeZoneById(u.TimeZone, out var zone) && zone.HasIanaId))
                    return (null, Rejection.Invalid("time_zone", "Not a known IANA time zone."));
                if (u.Locale is not null && !IsLocale(u.Locale)) return (null, Rejection.Invalid("locale", "Not a valid locale tag."));
                var next = s.Apply(new ProfileUpdated(meta, u.DisplayName, u.TimeZone, u.Locale));
                return (new ProfileUpdated(meta, u.DisplayName, u.TimeZone, u.Locale), new ProfileView(u.UserId, next.Profile));
            case EraseUser e:
                // Every erasure request is an audited act, including a repeat that finds no key left to destroy.
                var erased = new UserErased(meta with { ActorId = e.ActorId }, e.UserId, e.KeyIds);
                return (erased, erased);
            case GetProfile g:
                return (null, new ProfileView(g.UserId, s.Profile));
            case GetReadMarkers:
                return (null, new ReadMarkers(s.ReadMarkers));
            default:
                return (null, Rejection.Invalid("command", $"Unknown command {command.GetType().Name}."));
        }
    }

    /// <summary>
    /// The sliding-window rule: at most <paramref name="limit"/> slots in any <see cref="RateWindow"/>.
    /// Returns the wait until the oldest slot leaves the window when full, else null.
    /// </summary>
    public static TimeSpan? RetryAfter(IReadOnlyCollection<long> slotTicks, long oldestTicks, int limit, DateTimeOffset now) =>
        RetryAfter(slotTicks.Count, oldestTicks, limit, now, RateWindow);

    /// <summary>The sliding-window rule for any window: <paramref name="count"/> slots taken, the oldest at <paramref name="oldestTicks"/>.</summary>
    public static TimeSpan? RetryAfter(int count, long oldestTicks, int limit, DateTimeOffset now, TimeSpan window)
    {
        if (count < limit) return null;
        var wait = new DateTimeOffset(oldestTicks, TimeSpan.Zero) + window - now;
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    // ICU accepts almost any name as a culture ("123", "en_us"), so the BCP 47 shape is checked first:
    // a 2-3 letter language, then subtags of 1-8 letters or digits.
    private static readonly System.Text.RegularExpressions.Regex LocaleShape =
        new(@"\A[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    private static bool IsLocale(string tag)
    {
        if (tag.Length is 0 or > 35 || !LocaleShape.IsMatch(tag)) return false;
        try
        {
            return !System.Globalization.CultureInfo.GetCultureInfo(tag, predefinedOnly: false).Equals(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (System.Globalization.CultureNotFoundException)
        {
            return false;
        }
    }
}
