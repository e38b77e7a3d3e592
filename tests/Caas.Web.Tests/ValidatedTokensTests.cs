using System.Security.Claims;
using System.Text;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Caas.Web.Tests;

/// <summary>
/// Validated tokens remembered until they expire: the same text is answered from memory, any other text (another
/// signature) is validated in full, nothing outlives its expiry, and the memory is bounded.
/// </summary>
public sealed class ValidatedTokensTests
{
    internal const string Secret = "validated-tokens-test-secret-of-at-least-32-bytes";

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static TokenValidationParameters Parameters() => new()
    {
        IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Secret)),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        ValidateLifetime = true,
        ValidateIssuer = false,
        ValidateAudience = false,
    };

    internal static string Token(string user, DateTime expires, string secret = Secret) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Claims = new Dictionary<string, object> { ["sub"] = user, ["tenant_id"] = "acme" },
        Expires = expires,
        SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
    });

    [Fact]
    public async Task The_same_token_is_answered_from_memory_and_another_signature_is_validated_in_full()
    {
        var tokens = new ValidatedTokens(new JsonWebTokenHandler { MapInboundClaims = false }, 100);
        var token = Token("alice", DateTime.UtcNow.AddHours(1));
        var first = await tokens.ValidateTokenAsync(token, Parameters());
        Assert.True(first.IsValid);
        Assert.Equal(0, tokens.Hits);
        var second = await tokens.ValidateTokenAsync(token, Parameters());
        Assert.Same(first, second);
        Assert.Equal(1, tokens.Hits);

        // The same claims signed with another key, and the remembered token with its signature's last characters cut.
        var forged = Token("alice", DateTime.UtcNow.AddHours(1), secret: Secret + "-other");
        Assert.False((await tokens.ValidateTokenAsync(forged, Parameters())).IsValid);
        Assert.False((await tokens.ValidateTokenAsync(token[..^4], Parameters())).IsValid);
        Assert.Equal(1, tokens.Hits);
        Assert.Equal(1, tokens.Count); // refusals are not remembered
    }

    [Fact]
    public async Task A_remembered_token_is_not_answered_from_memory_once_it_has_expired()
    {
        var expires = DateTime.UtcNow.AddHours(1);
        var clock = new Clock(DateTimeOffset.UtcNow);
        var tokens = new ValidatedTokens(new JsonWebTokenHandler { MapInboundClaims = false }, 100, clock);
        var token = Token("alice", expires);
        Assert.True((await tokens.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.True((await tokens.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.Equal(1, tokens.Hits);

        // Past its expiry by this handler's clock: validated in full again (the inner handler, on the real clock,
        // still finds it valid), not taken from memory.
        clock.Now = new DateTimeOffset(expires, TimeSpan.Zero).AddSeconds(1);
        Assert.True((await tokens.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.Equal(1, tokens.Hits);
        Assert.Equal(0, tokens.Count); // its expiry is past by this clock, so it is not remembered again
    }

    [Fact]
    public async Task The_memory_is_bounded()
    {
        var tokens = new ValidatedTokens(new JsonWebTokenHandler { MapInboundClaims = false }, 3);
        for (var i = 0; i < 10; i++)
        {
            Assert.True((await tokens.ValidateTokenAsync(Token($"user{i}", DateTime.UtcNow.AddHours(1)), Parameters())).IsValid);
            Assert.InRange(tokens.Count, 1, 3);
        }
    }

    [Fact]
    public async Task A_full_memory_where_a_few_tokens_expire_at_a_time_is_not_swept_on_every_new_token()
    {
        // Twenty live tokens, one expiring each minute; then a new token each minute. Dropping only the expired one
        // would leave the memory full again at once, and every new token would read every entry.
        var start = DateTime.UtcNow;
        var clock = new Clock(new DateTimeOffset(start, TimeSpan.Zero));
        var tokens = new ValidatedTokens(new JsonWebTokenHandler { MapInboundClaims = false }, 20, clock);
        for (var i = 0; i < 20; i++)
            Assert.True((await tokens.ValidateTokenAsync(Token($"early{i}", start.AddMinutes(i + 1)), Parameters())).IsValid);
        Assert.Equal(20, tokens.Count);
        Assert.Equal(0, tokens.Sweeps);

        for (var i = 0; i < 40; i++)
        {
            clock.Now = new DateTimeOffset(start.AddMinutes(i + 1).AddSeconds(1), TimeSpan.Zero);
            Assert.True((await tokens.ValidateTokenAsync(Token($"late{i}", start.AddHours(2)), Parameters())).IsValid);
            Assert.InRange(tokens.Count, 1, 20);
        }
        // A sweep that frees less than a quarter of the room empties it: at most one sweep per five new tokens.
        Assert.InRange(tokens.Sweeps, 1, 40 / 5);
    }
}
