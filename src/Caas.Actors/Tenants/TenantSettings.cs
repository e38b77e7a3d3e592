using Caas.Actors.Common;

namespace Caas.Actors.Tenants;

/// <summary>
/// Per-tenant knobs. Later capabilities add theirs here, each with its default on the constructor: settings stored
/// before a knob existed are read with that default (System.Text.Json fills a missing parameter from it), not zero.
/// </summary>
public sealed record TenantSettingsState(int MessageRatePerMinute = 60, int IdempotencyHorizonSeconds = 86_400,
    string DefaultPhoneRegion = "US", int MaxMessageChars = 4_000, int RejectedAttemptsPerMinute = 30, int MessageCapPerHour = 1_000,
    TenantMediaSettings? Media = null, string DefaultLanguage = SearchLanguages.Default)
    : ICaasMessage
{
    public static TenantSettingsState Default { get; } = new();

    [System.Text.Json.Serialization.JsonIgnore]
    public TimeSpan IdempotencyHorizon => TimeSpan.FromSeconds(IdempotencyHorizonSeconds);
}

public interface ITenantCommand : IEntityMessage, ICaasMessage
{
    string TenantId { get; }
}

public abstract record TenantCommand(string TenantId) : ITenantCommand
{
    [System.Text.Json.Serialization.JsonIgnore]
    public string EntityId => TenantId;
}

public sealed record GetTenantSettings(string TenantId) : TenantCommand(TenantId);

/// <summary>Null fields stay as they are.</summary>
public sealed record UpdateTenantSettings(string TenantId, string ActorId, int? MessageRatePerMinute, int? IdempotencyHorizonSeconds,
    string? DefaultPhoneRegion, int? MaxMessageChars, int? RejectedAttemptsPerMinute = null, int? MessageCapPerHour = null,
    string? DefaultLanguage = null)
    : TenantCommand(TenantId);

/// <summary>
/// The languages a tenant's search can be in (<c>default_language</c>): PostgreSQL's built-in text-search
/// configurations (stemming and stop words per language; <c>simple</c> only lower-cases). English is the default.
/// </summary>
public static class SearchLanguages
{
    public const string Default = "english";

    public static readonly IReadOnlyList<string> All =
    [
        "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hindi", "hungarian",
        "indonesian", "irish", "italian", "lithuanian", "nepali", "norwegian", "portuguese", "romanian", "russian", "serbian", "simple",
        "spanish", "swedish", "tamil", "turkish", "yiddish",
    ];

    public static bool IsValid(string? language) => language is not null && All.Contains(language, StringComparer.Ordinal);

    /// <summary>A stored or configured name as a configuration safe to put in SQL: one of <see cref="All"/>, else the default.</summary>
    public static string Safe(string? language) => IsValid(language) ? language! : Default;
}

/// <summary>
/// Media limits of a tenant (README: Media, tenant settings). A null field is the node's default (its environment
/// variable); quotas in bytes and files, per tenant and per user; the allowlist as exact types and <c>family/*</c>.
/// </summary>
public sealed record TenantMediaSettings(long? TenantQuotaBytes = null, long? TenantQuotaFiles = null, long? UserQuotaBytes = null,
    long? UserQuotaFiles = null, IReadOnlyList<string>? AllowedTypes = null, long? RetentionSeconds = null)
{
    public static TenantMediaSettings Empty { get; } = new();

    public bool Equals(TenantMediaSettings? other) =>
        other is not null && TenantQuotaBytes == other.TenantQuotaBytes && TenantQuotaFiles == other.TenantQuotaFiles
        && UserQuotaBytes == other.UserQuotaBytes && UserQuotaFiles == other.UserQuotaFiles && RetentionSeconds == other.RetentionSeconds
        && (AllowedTypes ?? []).SequenceEqual(other.AllowedTypes ?? []) && (AllowedTypes is null) == (other.AllowedTypes is null);

    public override int GetHashCode() => HashCode.Combine(TenantQuotaBytes, TenantQuotaFiles, UserQuotaBytes, UserQuotaFiles, AllowedTypes?.Count);
}

/// <summary>
/// Replaces the tenant's media settings as a whole (a PUT): a null field goes back to the node's default.
/// </summary>
public sealed record UpdateTenantMediaSettings(string TenantId, string ActorId, TenantMediaSettings Media) : TenantCommand(TenantId);

public sealed record TenantSettingsChanged(EventMeta Meta, TenantSettingsState Settings) : IDomainEvent, ICaasMessage;

public static class TenantSettingsDecider
{
    public static (TenantSettingsChanged? Event, object Reply) Decide(TenantSettingsState s, ITenantCommand command, DateTimeOffset now)
    {
        switch (command)
        {
            case GetTenantSettings:
                return (null, s);
            case UpdateTenantSettings u:
                var errors = new Dictionary<string, string[]>();
                if (u.MessageRatePerMinute is < 1 or > 100_000) errors["message_rate_per_minute"] = ["Between 1 and 100000."];
                if (u.IdempotencyHorizonSeconds is < 60 or > 30 * 86_400) errors["idempotency_horizon_seconds"] = ["Between 60 and 2592000."];
                if (u.DefaultPhoneRegion is { } r && (r.Length != 2 || !r.All(char.IsAsciiLetterUpper)))
                    errors["default_phone_region"] = ["A two-letter upper-case region code (ISO 3166-1), such as US."];
                if (u.MaxMessageChars is < 1 or > 100_000) errors["max_message_chars"] = ["Between 1 and 100000."];
                if (u.RejectedAttemptsPerMinute is < 1 or > 100_000) errors["rejected_attempts_per_minute"] = ["Between 1 and 100000."];
                if (u.MessageCapPerHour is < 1 or > 1_000_000) errors["message_cap_per_hour"] = ["Between 1 and 1000000."];
                if (u.DefaultLanguage is { } language && !SearchLanguages.IsValid(language))
                    errors["default_language"] = ["One of: " + string.Join(", ", SearchLanguages.All) + "."];
                if (errors.Count > 0) return (null, new Rejection(ErrorCodes.ValidationFailed, "The settings are not valid.", errors));
                var next = new TenantSettingsState(u.MessageRatePerMinute ?? s.MessageRatePerMinute,
                    u.IdempotencyHorizonSeconds ?? s.IdempotencyHorizonSeconds, u.DefaultPhoneRegion ?? s.DefaultPhoneRegion,
                    u.MaxMessageChars ?? s.MaxMessageChars, u.RejectedAttemptsPerMinute ?? s.RejectedAttemptsPerMinute,
                    u.MessageCapPerHour ?? s.MessageCapPerHour, s.Media, u.DefaultLanguage ?? s.DefaultLanguage);
                return next == s ? (null, s) : (new TenantSettingsChanged(new EventMeta(u.TenantId, u.ActorId, now), next), next);
            case UpdateTenantMediaSettings m:
                var problems = ValidateMedia(m.Media);
                if (problems.Count > 0) return (null, new Rejection(ErrorCodes.ValidationFailed, "The media settings are not valid.", problems));
                var media = m.Media with { AllowedTypes = m.Media.AllowedTypes?.Select(t => t.Trim().ToLowerInvariant()).Distinct().ToList() };
                var updated = s with { Media = media == TenantMediaSettings.Empty ? null : media };
                return updated == s ? (null, s) : (new TenantSettingsChanged(new EventMeta(m.TenantId, m.ActorId, now), updated), updated);
            default:
                return (null, Rejection.Invalid("command", "Unknown command."));
        }
    }

    private static Dictionary<string, string[]> ValidateMedia(TenantMediaSettings m)
    {
        var errors = new Dictionary<string, string[]>();
        const long maxBytes = 1L << 50, maxFiles = 1_000_000_000;
        if (m.TenantQuotaBytes is < 0 or > maxBytes) errors["tenant_quota_bytes"] = [$"Between 0 and {maxBytes}."];
        if (m.TenantQuotaFiles is < 0 or > maxFiles) errors["tenant_quota_files"] = [$"Between 0 and {maxFiles}."];
        if (m.UserQuotaBytes is < 0 or > maxBytes) errors["user_quota_bytes"] = [$"Between 0 and {maxBytes}."];
        if (m.UserQuotaFiles is < 0 or > maxFiles) errors["user_quota_files"] = [$"Between 0 and {maxFiles}."];
        if (m.RetentionSeconds is < 0 or > 3650L * 86_400) errors["retention_seconds"] = ["Between 0 and 315360000 (ten years)."];
        if (m.AllowedTypes is { } types)
        {
            if (types.Count > 100) errors["allowed_types"] = ["At most 100 types."];
            else if (types.Any(t => !IsMediaType(t)))
                errors["allowed_types"] = ["Each a media type such as image/png, or a family such as image/*."];
        }
        return errors;
    }

    private static bool IsMediaType(string? t)
    {
        if (string.IsNullOrWhiteSpace(t) || t.Length > 127) return false;
        var parts = t.Trim().Split('/');
        static bool Token(string p) => p.Length > 0 && p.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '+' or '_');
        return parts.Length == 2 && Token(parts[0]) && (parts[1] == "*" || Token(parts[1]));
    }
}
