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
/// Only the configured algorithm is accepted; <c>alg: none</c> never is.
/// </summary>
public sealed record JwtSettings(string? Secret, string? PublicKeyPem, string? Issuer, string? Audience)
{
    public const int MinSecretBytes = 32;

    public (SecurityKey Key, string Algorithm) VerificationKey()
    {
        if (!string.IsNullOrEmpty(PublicKeyPem))
        {
            try
            {
                var rsa = RSA.Create();
                rsa.ImportFromPem(PublicKeyPem);
                return (new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256);
            }
            catch (ArgumentException)
            {
                var ecdsa = ECDsa.Create();
                ecdsa.ImportFromPem(PublicKeyPem);
                return (new ECDsaSecurityKey(ecdsa), SecurityAlgorithms.EcdsaSha256);
            }
        }
        var bytes = Encoding.UTF8.GetBytes(Secret ?? string.Empty);
        if (bytes.Length < MinSecretBytes)
            throw new InvalidOperationException($"CAAS_JWT_SECRET must be at least {MinSecretBytes} bytes.");
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
    public static IServiceCollection AddCaasAuthentication(this IServiceCollection services, JwtSettings settings)
    {
        var (key, algorithm) = settings.VerificationKey();
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.TokenValidationParameters = new TokenValidationParameters
            {
                IssuerSigningKey = key,
                ValidAlgorithms = [algorithm],
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
}
