using System.Security.Claims;
using Caas.Web.Auth;

namespace Caas.Web.Tests;

public sealed class CallerTests
{
    private static ClaimsIdentity Identity(params (string Type, string Value)[] claims) =>
        new(claims.Select(c => new Claim(c.Type, c.Value)), "Bearer", "sub", "roles");

    [Fact]
    public void The_caller_is_read_from_the_claims_and_a_caller_principal_answers_the_one_read_when_it_was_made()
    {
        var identity = Identity(("sub", "alice"), ("tenant_id", "acme"), ("roles", "admin"), ("roles", "operator"));
        var read = Caller.From(new ClaimsPrincipal(identity));
        Assert.NotNull(read);
        Assert.Equal(("alice", "acme"), (read.UserId, read.TenantId));
        Assert.True(read.IsAdmin && read.HasAnyRole("operator"));

        var principal = new CallerPrincipal([identity], read);
        Assert.Same(read, Caller.From(principal));
        Assert.Same(read, Caller.From(principal));
        Assert.Null(Caller.From(new ClaimsPrincipal(Identity(("sub", "alice"), ("tenant_id", "a/b")))));
    }
}
