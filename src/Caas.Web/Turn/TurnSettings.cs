using System.Globalization;

namespace Caas.Web.Turn;

/// <summary>
/// TURN configuration (environment): <c>CAAS_TURN_SERVERS</c> (comma-separated stun:/turn:/turns: URIs),
/// <c>CAAS_TURN_SECRET</c> (coturn's static-auth-secret, shared by every server without a secret of its own),
/// <c>CAAS_TURN_TTL</c> (credential lifetime in seconds, default 86,400) and <c>CAAS_TURN_HEALTH_INTERVAL</c> (seconds
/// between health checks, default 10; 1 is allowed for tests).
/// </summary>
public sealed record TurnSettings(IReadOnlyList<string> Servers, string? Secret, TimeSpan Ttl, TimeSpan HealthInterval)
{
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromSeconds(86_400);
    public static readonly TimeSpan DefaultHealthInterval = TimeSpan.FromSeconds(10);

    public static TurnSettings None { get; } = new([], null, DefaultTtl, DefaultHealthInterval);

    /// <summary>
    /// A check must end within one interval, so a server that fails leaves the list within two (the check that
    /// starts at most one interval after it failed, plus that check's own time); never more than 5 s.
    /// </summary>
    public TimeSpan CheckTimeout => HealthInterval < TimeSpan.FromSeconds(5) ? HealthInterval : TimeSpan.FromSeconds(5);

    public static TurnSettings FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        var servers = (env("CAAS_TURN_SERVERS") ?? string.Empty)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var s in servers)
            if (TurnUri.TryParse(s, out var error) is null)
                throw new InvalidOperationException($"CAAS_TURN_SERVERS: '{s}' is not a usable URI. {error}");
        var secret = env("CAAS_TURN_SECRET") is { Length: > 0 } s1 ? s1 : null;
        return new TurnSettings(servers, secret,
            Seconds(env, "CAAS_TURN_TTL", DefaultTtl, min: 60),
            Seconds(env, "CAAS_TURN_HEALTH_INTERVAL", DefaultHealthInterval, min: 1));
    }

    private static TimeSpan Seconds(Func<string, string?> env, string name, TimeSpan fallback, int min)
    {
        var text = env(name);
        if (string.IsNullOrWhiteSpace(text)) return fallback;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds < min)
            throw new InvalidOperationException($"{name} is a whole number of seconds, {min} or more.");
        return TimeSpan.FromSeconds(seconds);
    }
}
