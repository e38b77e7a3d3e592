using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Caas.Actors.Common;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Caas.Web.Auth;

/// <summary>
/// Token settings: HS256 with a shared secret (at least 32 bytes), or RS256 / ES256 with a PEM public key.
/// Only the configured algorithms are accepted; <c>alg: none</c> never is. During a key rotation the previous secret
/// (<c>CAAS_JWT_SECRET_PREVIOUS</c>) or public key (<c>CAAS_JWT_PUBLIC_KEY_PREVIOUS</c>) is accepted too, so tokens
/// issued before the switch stay valid until they expire; tokens are only ever issued with the current secret.
/// </summary>
public sealed record JwtSettings(string? Secret, string? PublicKeyPem, string? Issuer, string? Audience,
    string? SecretPrevious = null, string? PublicKeyPemPrevious = null)
{
    public const int MinSecretBytes = 32;

    public (SecurityKey Key, string Algorithm) VerificationKey() => KeyFor(Secret, PublicKeyPem, "CAAS_JWT_SECRET");

    /// <summary>The current key first, then the previous one when a rotation is under way.</summary>
    public IReadOnlyList<(SecurityKey Key, string Algorithm)> VerificationKeys()
    {
        var keys = new List<(SecurityKey, string)> { VerificationKey() };
        if (!string.IsNullOrEmpty(SecretPrevious) || !string.IsNullOrEmpty(PublicKeyPemPrevious))
            keys.Add(KeyFor(SecretPrevious, PublicKeyPemPrevious, "CAAS_JWT_SECRET_PREVIOUS"));
        return keys;
    }

    private static (SecurityKey Key, string Algorithm) KeyFor(string? secret, string? publicKeyPem, string secretName)
    {
        if (!string.IsNullOrEmpty(publicKeyPem))
        {
            try
            {
                var rsa = RSA.Create();
                rsa.ImportFromPem(publicKeyPem);
                return (new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256);
            }
            catch (ArgumentException)
            {
                var ecdsa = ECDsa.Create();
                ecdsa.ImportFromPem(publicKeyPem);
                return (new ECDsaSecurityKey(ecdsa), SecurityAlgorithms.EcdsaSha256);
            }
        }
        var bytes = Encoding.UTF8.GetBytes(secret ?? string.Empty);
        if (bytes.Length < MinSecretBytes)
            throw new InvalidOperationException($"{secretName} must be at least {MinSecretBytes} bytes.");
        return (new SymmetricSecurityKey(bytes), SecurityAlgorithms.HmacSha256);
    }

    /// <summary>Issues an HS256 token (the dev-token command and tests).</summary>
    public string Issue(string tenantId, string userId, IEnumerable<string>? roles = null, TimeSpan? lifetime = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = userId, ["tenant_id"] = tenantId };
        var roleList = roles?.ToArray() ?? [];
        if (roleList.Length > 0) claims["roles"] = roleList;
        var descriptor = new SecurityTokenDescriptor
        {
            Claims = claims,
            Expires = DateTime.UtcNow + (lifetime ?? TimeSpan.FromHours(24)),
            Issuer = Issuer,
            Audience = Audience,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Secret!)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler().CreateToken(descriptor);
    }
}

public static class JwtSetup
{
    /// <summary>How many validated tokens a node remembers (<see cref="ValidatedTokens"/>).</summary>
    public const int RememberedTokens = 20_000;

    public static IServiceCollection AddCaasAuthentication(this IServiceCollection services, JwtSettings settings)
    {
        var keys = settings.VerificationKeys();
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.TokenHandlers.Clear();
            o.TokenHandlers.Add(new ValidatedTokens(new JsonWebTokenHandler { MapInboundClaims = false }, RememberedTokens));
            o.TokenValidationParameters = new TokenValidationParameters
            {
                IssuerSigningKeys = keys.Select(k => k.Key).ToArray(),
                ValidAlgorithms = keys.Select(k => k.Algorithm).Distinct().ToArray(),
                RequireSignedTokens = true,
                RequireExpirationTime = true,
                ValidateLifetime = true,
                ClockSkew = TimeSpan.FromSeconds(30),
                ValidateIssuer = settings.Issuer is not null,
                ValidIssuer = settings.Issuer,
                ValidateAudience = settings.Audience is not null,
                ValidAudience = settings.Audience,
                NameClaimType = "sub",
                RoleClaimType = "roles",
            };
            o.Events = new JwtBearerEvents
            {
                // SignalR clients send the token as a query parameter on WebSocket requests.
                OnMessageReceived = ctx =>
                {
                    if (ctx.Request.Path.StartsWithSegments("/hubs") && ctx.Request.Query.TryGetValue("access_token", out var t))
                        ctx.Token = t;
                    return Task.CompletedTask;
                },
                // A signed token still names a tenant and a user that every route and the hub can use; one that does
                // not (missing, control characters) is refused here, so REST and the hub's negotiate agree on it.
                OnTokenValidated = ctx =>
                {
                    if (ctx.Principal is null || Caller.Read(ctx.Principal) is not { } caller)
                        ctx.Fail("The token's sub and tenant_id must be valid ids.");
                    else ctx.Principal = Detached(ctx.Principal, caller);
                    return Task.CompletedTask;
                },
                OnChallenge = async ctx =>
                {
                    ctx.HandleResponse();
                    var why = ctx.AuthenticateFailure is SecurityTokenExpiredException ? "The token has expired."
                        : ctx.AuthenticateFailure is not null ? "The token is not valid."
                        : "A bearer token is required.";
                    await Problems.WriteAsync(ctx.HttpContext, new Rejection(ErrorCodes.Unauthenticated, why));
                },
                OnForbidden = ctx => Problems.WriteAsync(ctx.HttpContext, Rejection.Forbidden("Your role does not allow this.")),
            };
        });
        services.AddAuthorization();
        return services;
    }

    /// <summary>
    /// The same claims in an identity of the same kind (claim types compared case-sensitively), without the parsed
    /// token behind them: the handler's identity keeps the whole token (its text, header and payload maps), and a hub
    /// connection holds its principal for as long as it is open, so every idle connection held its token twice over.
    /// </summary>
    internal static ClaimsPrincipal Detached(ClaimsPrincipal principal, Caller caller) => new CallerPrincipal(principal.Identities.Select(i =>
        new CaseSensitiveClaimsIdentity(i.Claims, i.AuthenticationType, i.NameClaimType, i.RoleClaimType)), caller);
}
