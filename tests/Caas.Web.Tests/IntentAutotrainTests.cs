using System.Diagnostics;
using System.Text.Json;
using Caas.Node;
using Caas.Tests.Shared;
using Microsoft.AspNetCore.Builder;

namespace Caas.Web.Tests;

/// <summary>
/// A node started with no shipped intent model (a fresh clone): it trains one from the data in the repository in the
/// background, says so in /health (training, then ready), answers intent with it once ready, and keeps it for the next
/// start. The only test with autotraining on (tests/Shared turns it off for every other node).
/// </summary>
public sealed class IntentAutotrainTests
{
    [Fact]
    public async Task A_node_without_a_model_trains_the_shipped_one_in_the_background_and_uses_it_when_ready()
    {
        var dataDir = TestDatabases.NewSqliteDirectory();
        var options = new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("autotrain"),
            DataDir = dataDir,
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            LogLevel = "Warning",
            IntentAutotrain = true,
        };
        var app = await NodeHost.BuildAsync(options);
        await app.StartAsync();
        try
        {
            var jwt = new Caas.Web.Auth.JwtSettings(NodeFixture.Secret, null, null, null);
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(30) };
            client.DefaultRequestHeaders.Authorization = new("Bearer", jwt.Issue("t-autotrain", "ada", []));

            // Serving starts at once; the model is not there yet (training takes about a minute).
            var first = await IntentStateAsync(client);
            Assert.Contains(first, new[] { "training", "ready" });

            var watch = Stopwatch.StartNew();
            string state;
            while ((state = await IntentStateAsync(client)) != "ready")
            {
                Assert.Equal("training", state);
                Assert.True(watch.Elapsed < TimeSpan.FromMinutes(10), "the shipped intent model was not trained within 10 minutes");
                await Task.Delay(500);
            }
            Assert.True(File.Exists(Path.Combine(dataDir, "models", "intent", "intent.zip")), "the trained model is saved for the next start");

            var room = await client.CreateGroupAsync();
            var posted = await client.PostMessageAsync(room, "what is the weather going to be like in boston tomorrow");
            var seq = posted.GetProperty("seq").GetInt64();
            var (_, page) = await client.ApiGet($"/v1/messages/conversations/{room}?after_seq={seq - 1}");
            var message = page.GetProperty("items").EnumerateArray().Single(m => m.GetProperty("seq").GetInt64() == seq);
            var intent = Find(Find(message.GetProperty("enrichment"), "results").EnumerateArray()
                .Single(r => Find(r, "name").GetString() == "intent"), "data");
            Assert.Equal("weather", Find(intent, "intent").GetString());
            Assert.Equal("shipped", Find(intent, "model").GetString());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static async Task<string> IntentStateAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/health");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return body.GetProperty("intent").GetString()!;
    }

    private static JsonElement Find(JsonElement e, string name) =>
        e.EnumerateObject().First(p => p.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;
}
