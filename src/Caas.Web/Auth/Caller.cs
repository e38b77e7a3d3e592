using System.Security.Claims;
using Caas.Actors.Common;

namespace Caas.Web.Auth;

/// <summary>Who is calling, from the validated token: user, tenant, roles. Every entity id and query is scoped by it.</summary>
public sealed record Caller(string UserId, string TenantId, IReadOnlySet<string> Roles)
{
    public bool IsAdmin => Roles.Contains("admin");

    public bool HasAnyRole(params string[] roles) => roles.Any(Roles.Contains);

    /// <summary>Minimal-API binding; the v1 group's filter has already refused requests without a valid caller.</summary>
    public static ValueTask<Caller?> BindAsync(Microsoft.AspNetCore.Http.HttpContext http) => ValueTask.FromResult(From(http.User));

    public static Caller? From(ClaimsPrincipal principal)
    {
        var sub = principal.FindFirstValue("sub");
        var tenant = principal.FindFirstValue("tenant_id");
        if (!Ids.IsValid(sub) || !Ids.IsValid(tenant)) return null;
        var roles = principal.FindAll("roles").Select(c => c.Value).ToHashSet(StringComparer.Ordinal);
        return new Caller(sub!, tenant!, roles);
    }
}
