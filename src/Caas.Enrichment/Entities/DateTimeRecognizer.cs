using System.Globalization;
using System.Text.RegularExpressions;
using NodaTime;
using NodaTime.Text;

namespace Caas.Enrichment.Entities;

/// <summary>
/// Dates and times in English, resolved against when the message was sent, in the sender's time zone:
/// "tomorrow at 3pm", "next Friday", "in 2 hours", "3 days ago", "at 15:30", "May 1st 2025", "2025-05-01".
/// A resolved date and time reads as ISO 8601 with the zone's offset ("2025-05-02T15:00:00+02:00"); a date alone as
/// "2025-05-02"; a time alone resolves to its next occurrence.
/// </summary>
public static partial class DateTimeRecognizer
{
    private const string Weekday = @"(?<weekday>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)";
    private const string Month = @"(?<month>january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)";
    private const string Clock = @"(?<clock>(?<hour>[01]?\d|2[0-3])(?::(?<minute>[0-5]\d))?\s?(?<ampm>a\.?m\.?|p\.?m\.?)(?!\w)|(?<hour>[01]?\d|2[0-3]):(?<minute>[0-5]\d)(?!\d)|(?<named>noon|midday|midnight))";
    private const string Relative = @"(?<relday>day after tomorrow|day before yesterday|today|tonight|tomorrow|tmrw|yesterday)";
    private const string Shift = @"(?<shiftdir>in|within|after)\s+(?<count>\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty-five|half an?)\s+(?<unit>minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)|(?<count>\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+(?<unit>minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\s+(?<ago>ago|from now|later)";
    private const string WeekdayPhrase = @"(?:(?<which>next|this|last|coming|on)\s+)?" + Weekday + @"(?:\s+(?<week>next week|this week))?";
    private const string IsoDate = @"(?<iso>(?<y>\d{4})-(?<mo>\d{1,2})-(?<d>\d{1,2}))";
    private const string SlashDate = @"(?<slash>(?<mo>\d{1,2})/(?<d>\d{1,2})(?:/(?<y>\d{2,4}))?)";
    private const string NamedDate = @"(?:" + Month + @"\s+(?<d>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?<y>\d{4}))?|(?<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + Month + @"(?:,?\s+(?<y>\d{4}))?)";

    private const string Day = "(?:" + Relative + "|" + WeekdayPhrase + "|" + IsoDate + "|" + NamedDate + "|" + SlashDate + ")";
    private const string TimePart = @"(?:(?:at|by|around|@)\s+)?" + Clock + @"|at\s+(?<bare>[1-9]|1[0-2])(?!\s*(?:[:.\d%]|am|pm|a\.m|p\.m))(?=\s|$|[,.!?;])";

    [GeneratedRegex(@"(?<![\w])(?:" + Shift + "|" + Day + @"(?:\s*(?:,\s*)?(?:" + TimePart + @"))?|(?:" + TimePart + @")(?:\s+(?:on\s+)?" + Day + @")?|(?<next>next|last|this)\s+(?<span>week|month|year|weekend))(?![\w])",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: EntityPatterns.TimeoutMilliseconds)]
    private static partial Regex Pattern();

    public static IEnumerable<Entity> Recognize(string text, EntityContext context)
    {
        var zone = DateTimeZoneProviders.Tzdb.GetZoneOrNull(context.TimeZoneId) ?? DateTimeZone.Utc;
        var now = Instant.FromDateTimeOffset(context.SentAt).InZone(zone);
        foreach (Match m in Pattern().Matches(text))
        {
            var trimmed = m.Value.TrimEnd();
            if (trimmed.Length == 0) continue;
            var value = Resolve(m, now);
            if (value is null) continue;
            yield return new Entity(EntityTypes.DateTime, m.Index, m.Index + trimmed.Length, trimmed, value);
        }
    }

    private static string? Resolve(Match m, ZonedDateTime now)
    {
        var g = m.Groups;
        var today = now.Date;

        if (g["unit"].Success)
        {
            var count = CountOf(g["count"].Value);
            if (count is null) return null;
            var sign = g["ago"].Success && g["ago"].Value.Equals("ago", StringComparison.OrdinalIgnoreCase) ? -1 : 1;
            var local = Shifted(now.LocalDateTime, g["unit"].Value.ToLowerInvariant(), count.Value * sign);
            return FormatInstant(local, now.Zone);
        }

        if (g["span"].Success)
        {
            var direction = g["next"].Value.ToLowerInvariant() switch { "next" => 1, "last" => -1, _ => 0 };
            var date = g["span"].Value.ToLowerInvariant() switch
            {
                "week" => today.With(DateAdjusters.PreviousOrSame(IsoDayOfWeek.Monday)).PlusWeeks(direction),
                "month" => new LocalDate(today.Year, today.Month, 1).PlusMonths(direction),
                "year" => new LocalDate(today.Year + direction, 1, 1),
                _ => today.PlusWeeks(direction).With(DateAdjusters.NextOrSame(IsoDayOfWeek.Saturday)),
            };
            return LocalDatePattern.Iso.Format(date);
        }

        LocalDate? day = null;
        if (g["relday"].Success)
        {
            day = g["relday"].Value.ToLowerInvariant() switch
            {
                "today" or "tonight" => today,
                "tomorrow" or "tmrw" => today.PlusDays(1),
                "yesterday" => today.PlusDays(-1),
                "day after tomorrow" => today.PlusDays(2),
                _ => today.PlusDays(-2),
            };
        }
        else if (g["weekday"].Success)
        {
            var weekday = ParseWeekday(g["weekday"].Value);
            var which = g["which"].Value.ToLowerInvariant();
            var mondayThisWeek = today.With(DateAdjusters.PreviousOrSame(IsoDayOfWeek.Monday));
            var nextWeek = which == "next" || g["week"].Value.StartsWith("next", StringComparison.OrdinalIgnoreCase);
            day = which switch
            {
                "last" => today.With(DateAdjusters.Previous(weekday)),
                // "next Friday" is the Friday of next week, as most readers take it.
                _ when nextWeek => mondayThisWeek.PlusWeeks(1).PlusDays((int)weekday - 1),
                "this" => mondayThisWeek.PlusDays((int)weekday - 1),
                _ => today.With(DateAdjusters.NextOrSame(weekday)),
            };
        }
        else if (g["mo"].Success || g["month"].Success)
        {
            var month = g["month"].Success ? ParseMonth(g["month"].Value) : int.Parse(g["mo"].Value, CultureInfo.InvariantCulture);
            var dayOfMonth = int.Parse(g["d"].Value, CultureInfo.InvariantCulture);
            var year = g["y"].Success ? int.Parse(g["y"].Value, CultureInfo.InvariantCulture) : today.Year;
            if (year < 100) year += 2000;
            if (month is < 1 or > 12 || dayOfMonth < 1 || dayOfMonth > CalendarSystem.Iso.GetDaysInMonth(year, month)) return null;
            var date = new LocalDate(year, month, dayOfMonth);
            // A date without a year means its next occurrence.
            if (!g["y"].Success && date < today) date = date.PlusYears(1);
            day = date;
        }

        LocalTime? time = null;
        if (g["clock"].Success) time = ParseClock(m);
        else if (g["bare"].Success)
        {
            // "at 3" in a chat means the afternoon; "at 9" the morning.
            var hour = int.Parse(g["bare"].Value, CultureInfo.InvariantCulture);
            time = new LocalTime(hour < 8 ? hour + 12 : hour, 0);
        }
        if (time is null && day is null) return null;
        if (time is null) return LocalDatePattern.Iso.Format(day!.Value);

        if (day is null)
        {
            var candidate = today.At(time.Value);
            day = candidate <= now.LocalDateTime ? today.PlusDays(1) : today;
        }
        return FormatInstant(day.Value.At(time.Value), now.Zone);
    }

    private static LocalTime? ParseClock(Match m)
    {
        var g = m.Groups;
        if (g["named"].Success)
            return g["named"].Value.Equals("midnight", StringComparison.OrdinalIgnoreCase) ? LocalTime.Midnight : LocalTime.Noon;
        var hour = int.Parse(g["hour"].Value, CultureInfo.InvariantCulture);
        var minute = g["minute"].Success ? int.Parse(g["minute"].Value, CultureInfo.InvariantCulture) : 0;
        if (g["ampm"].Success)
        {
            if (hour is 0 or > 12) return null;
            var pm = g["ampm"].Value.StartsWith('p') || g["ampm"].Value.StartsWith('P');
            hour = hour % 12 + (pm ? 12 : 0);
        }
        return new LocalTime(hour, minute);
    }

    private static string FormatInstant(LocalDateTime local, DateTimeZone zone) =>
        local.InZoneLeniently(zone).ToDateTimeOffset().ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);

    private static LocalDateTime Shifted(LocalDateTime start, string unit, double count) => unit.TrimEnd('s') switch
    {
        "minute" or "min" => start.PlusMinutes((long)Math.Round(count)),
        "hour" or "hr" => start.PlusMinutes((long)Math.Round(count * 60)),
        "day" => start.PlusDays((int)count),
        "week" => start.PlusWeeks((int)count),
        "month" => start.PlusMonths((int)count),
        _ => start.PlusYears((int)count),
    };

    private static double? CountOf(string written) => written.ToLowerInvariant() switch
    {
        "a" or "an" or "one" => 1, "two" => 2, "three" => 3, "four" => 4, "five" => 5, "six" => 6, "seven" => 7,
        "eight" => 8, "nine" => 9, "ten" => 10, "twelve" => 12, "fifteen" => 15, "twenty" => 20, "thirty" => 30,
        "forty-five" => 45, "half a" or "half an" => 0.5,
        var digits when int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
        _ => null,
    };

    private static IsoDayOfWeek ParseWeekday(string written) => written.ToLowerInvariant()[..3] switch
    {
        "mon" => IsoDayOfWeek.Monday, "tue" => IsoDayOfWeek.Tuesday, "wed" => IsoDayOfWeek.Wednesday,
        "thu" => IsoDayOfWeek.Thursday, "fri" => IsoDayOfWeek.Friday, "sat" => IsoDayOfWeek.Saturday,
        _ => IsoDayOfWeek.Sunday,
    };

    private static int ParseMonth(string written) => written.ToLowerInvariant()[..3] switch
    {
        "jan" => 1, "feb" => 2, "mar" => 3, "apr" => 4, "may" => 5, "jun" => 6,
        "jul" => 7, "aug" => 8, "sep" => 9, "oct" => 10, "nov" => 11, _ => 12,
    };
}
