using Caas.Web.Turn;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Turn;

/// <summary>A node whose TURN servers are the two coturn instances, checked every second.</summary>
public sealed class TurnNodeFixture : NodeFixture
{
    public static TurnSettings Settings => new(CoturnInstances.Servers, CoturnInstances.Secret, TimeSpan.FromHours(1), TimeSpan.FromSeconds(1));

    protected override void Configure(WebApplicationBuilder builder) => builder.Services.AddSingleton(Settings);
}
