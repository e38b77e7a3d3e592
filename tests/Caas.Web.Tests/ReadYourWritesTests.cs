using Caas.Node;
using Caas.Tests.Shared;
using Microsoft.AspNetCore.Builder;

namespace Caas.Web.Tests;

/// <summary>
/// A node that runs no projection (as when the projection's node died and the singleton has not moved yet): the read
/// model stays empty, and a client still reads its own acknowledged messages, merged from the journal.
/// </summary>
public sealed class ReadYourWritesTests : IAsyncLifetime
{
    private WebApplication? _app;
    private HttpClient? _alice;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            DataDir = TestDatabases.NewSqliteDirectory(),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            Roles = [NodeOptions.RoleApi, NodeOptions.RoleEntities],
        });
        await _app.StartAsync();
        _alice = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        _alice.DefaultRequestHeaders.Authorization = new("Bearer", new Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null).Issue("t-ryw", "alice"));
    }

    public async Task DisposeAsync()
    {
        _alice?.Dispose();
        if (_app is not null) await _app.DisposeAsync();
    }

    [Fact]
    public async Task Acknowledged_messages_are_listed_even_when_the_projection_is_stalled()
    {
        var id = await _alice!.CreateGroupAsync();
        for (var i = 1; i <= 5; i++) await _alice!.PostMessageAsync(id, $"m{i}", $"ryw-{i}");

        var (status, page) = await _alice!.ApiGet($"/v1/messages/conversations/{id}?limit=3");
        Assert.Equal(200, status);
        var items = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([5L, 4L, 3L], items.Select(m => m.GetProperty("seq").GetInt64()));
        Assert.Equal("m4", items[1].GetProperty("content").Str("text"));

        var (_, catchUp) = await _alice!.ApiGet($"/v1/messages/conversations/{id}?after_seq=1&limit=10");
        Assert.Equal([2L, 3L, 4L, 5L], catchUp.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("seq").GetInt64()));
    }
}
