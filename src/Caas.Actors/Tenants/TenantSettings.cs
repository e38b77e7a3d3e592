using Caas.Actors.Common;

namespace Caas.Actors.Tenants;

/// <summary>
/// Per-tenant knobs. Later capabilities add theirs here, each with its default on the constructor: settings stored
/// before a knob existed are read with that default (System.Text.Json fills a missing parameter from it), not zero.
/// </summary>
public sealed record TenantSettingsState(int MessageRatePerMinute = 60, int IdempotencyHorizonSeconds = 86_400,
    string DefaultPhoneRegion = "US", int MaxMessageChars = 4_000, int RejectedAttemptsPerMinute = 30, int MessageCapPerHour = 1_000)
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
    string? DefaultPhoneRegion, int? MaxMessageChars, int? RejectedAttemptsPerMinute = null, int? MessageCapPerHour = null)
    : TenantCommand(TenantId);

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
                if (errors.Count > 0) return (null, new Rejection(ErrorCodes.ValidationFailed, "The settings are not valid.", errors));
                var next = new TenantSettingsState(u.MessageRatePerMinute ?? s.MessageRatePerMinute,
                    u.IdempotencyHorizonSeconds ?? s.IdempotencyHorizonSeconds, u.DefaultPhoneRegion ?? s.DefaultPhoneRegion,
                    u.MaxMessageChars ?? s.MaxMessageChars, u.RejectedAttemptsPerMinute ?? s.RejectedAttemptsPerMinute,
                    u.MessageCapPerHour ?? s.MessageCapPerHour);
                return next == s ? (null, s) : (new TenantSettingsChanged(new EventMeta(u.TenantId, u.ActorId, now), next), next);
            default:
                return (null, Rejection.Invalid("command", "Unknown command."));
        }
    }
}
