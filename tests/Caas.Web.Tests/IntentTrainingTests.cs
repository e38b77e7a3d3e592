using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Caas.Web.Tests;

/// <summary>
/// A tenant's own intent model through the REST API on a real node and PostgreSQL: upload, train in the background,
/// live for that tenant's messages (stored enrichment), never for another tenant; a second upload takes over; bad
/// bodies and non-admins are refused.
/// </summary>
public sealed class IntentTrainingTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    private static readonly Dictionary<string, string[]> Phrases = new()
    {
        ["order_pizza"] = ["order a {0} pizza", "i want a {0} pizza delivered", "can i get a {0} pizza", "get me a pizza with {0} on it",
            "pizza with {0} please", "send a {0} pizza to my house", "i would like to order pizza, {0}", "one {0} pizza for delivery"],
        ["book_flight"] = ["book a flight to {0}", "i need a plane ticket to {0}", "find me flights to {0}", "fly me to {0} next week",
            "reserve a seat on a flight to {0}", "what flights go to {0}", "get me on a plane to {0}", "book airline tickets for {0}"],
        ["check_weather"] = ["what is the weather in {0}", "will it rain in {0} today", "how hot is it in {0}", "weather forecast for {0}",
            "is it sunny in {0}", "do i need an umbrella in {0}", "temperature in {0} right now", "is it cold outside in {0}"],
    };

    /// <summary>
    /// How long a wait for training or a refresh may take before the test calls it stuck. Not a speed claim (training a
    /// model of this size takes seconds, the other node refreshes every 3 s): a bound that only a hang can reach, even on
    /// a 2-core machine running every suite at once. Speed is measured by the benches.
    /// </summary>
    internal static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);

    private static readonly string[] Fillers = ["paris", "tokyo", "berlin", "cheese", "pepperoni", "mushroom", "boston", "large"];

    private static IEnumerable<(string Text, string Intent)> Examples(string suffix = "") =>
        from p in Phrases from template in p.Value from filler in Fillers.Take(3) select (string.Format(template, filler), p.Key + suffix);

    private static string JsonLines(IEnumerable<(string Text, string Intent)> rows) =>
        string.Join("\n", rows.Select(r => JsonSerializer.Serialize(new { text = r.Text, intent = r.Intent })));

    private static string Csv(IEnumerable<(string Text, string Intent)> rows) =>
        "text,intent\n" + string.Join("\n", rows.Select(r => $"\"{r.Text.Replace("\"", "\"\"")}\",{r.Intent}"));

    private static async Task<(int Status, JsonElement Body)> UploadAsync(HttpClient client, string body, string contentType)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/intents/train") { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        // A server refusing an oversize body answers before reading it; the client then need not send it.
        request.Headers.ExpectContinue = true;
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static async Task<JsonElement> WaitReadyAsync(HttpClient admin, int version)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var (status, body) = await admin.ApiGet("/v1/admin/intents/models");
            Assert.Equal(200, status);
            var row = body.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("version").GetInt32() == version);
            var state = row.Str("status");
            Assert.NotEqual("failed", state);
            if (state == "ready") return row;
            Assert.True(watch.Elapsed < Patience, $"version {version} not ready after {Patience}: {row}");
            await Task.Delay(200);
        }
    }

    /// <summary>The stored intent result of a message, as the messages API returns it.</summary>
    private static async Task<JsonElement> StoredIntentAsync(HttpClient client, string conversation, string text)
    {
        var posted = await client.PostMessageAsync(conversation, text);
        var seq = posted.GetProperty("seq").GetInt64();
        var (_, page) = await client.ApiGet($"/v1/messages/conversations/{conversation}?after_seq={seq - 1}");
        var message = page.GetProperty("items").EnumerateArray().Single(m => m.GetProperty("seq").GetInt64() == seq);
        var results = Find(message.GetProperty("enrichment"), "results");
        foreach (var r in results.EnumerateArray())
            if (Find(r, "name").GetString() == "intent") return Find(r, "data");
        throw new Xunit.Sdk.XunitException($"no intent result in {message}");
    }

    private static JsonElement Find(JsonElement e, string name) =>
        e.EnumerateObject().First(p => p.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    private static string? Prop(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    [Fact]
    public async Task A_tenant_model_trains_in_the_background_goes_live_for_its_tenant_only_and_a_second_upload_takes_over()
    {
        using var admin = node.Client("t-intent", "ada", "admin");
        using var stranger = node.Client("t-intent-other", "bob");
        var room = await admin.CreateGroupAsync();
        var strangerRoom = await stranger.CreateGroupAsync();

        var (status, accepted) = await UploadAsync(admin, JsonLines(Examples()), "application/x-ndjson");
        Assert.True(status == 202, accepted.ToString());
        Assert.Equal(1, accepted.GetProperty("version").GetInt32());
        Assert.Equal("training", accepted.Str("status"));
        var v1 = await WaitReadyAsync(admin, 1);
        Assert.Equal(72, v1.GetProperty("examples").GetInt32());
        Assert.Equal(3, v1.GetProperty("labels").GetInt32());
        Assert.True(v1.GetProperty("live").GetBoolean());
        Assert.True(v1.GetProperty("held_out_accuracy").GetDouble() >= 0.5, v1.ToString());

        var intent = await StoredIntentAsync(admin, room, "could you order me a pepperoni pizza tonight");
        Assert.Equal("order_pizza", Prop(intent, "intent"));
        Assert.Equal("tenant:v1", Prop(intent, "model"));
        Assert.Equal("book_flight", Prop(await StoredIntentAsync(admin, room, "i need a flight to tokyo on friday"), "intent"));

        // Another tenant neither sees the model nor gets answers from it.
        var theirs = await StoredIntentAsync(stranger, strangerRoom, "could you order me a pepperoni pizza tonight");
        Assert.NotEqual("tenant:v1", Prop(theirs, "model"));
        Assert.DoesNotContain("order_pizza", theirs.ToString());
        using var strangerAdmin = node.Client("t-intent-other", "boss", "admin");
        Assert.Equal(0, (await strangerAdmin.ApiGet("/v1/admin/intents/models")).Body.GetProperty("items").GetArrayLength());

        // A second upload (CSV, renamed intents) becomes v2 and takes over; v1 can be made live again.
        (status, accepted) = await UploadAsync(admin, Csv(Examples("_v2")), "text/csv");
        Assert.Equal(202, status);
        Assert.Equal(2, accepted.GetProperty("version").GetInt32());
        await WaitReadyAsync(admin, 2);
        intent = await StoredIntentAsync(admin, room, "what is the weather in boston");
        Assert.Equal("check_weather_v2", Prop(intent, "intent"));
        Assert.Equal("tenant:v2", Prop(intent, "model"));

        var (activated, _) = await admin.ApiPost("/v1/admin/intents/models/1/activate", null);
        Assert.Equal(200, activated);
        Assert.Equal("check_weather", Prop(await StoredIntentAsync(admin, room, "what is the weather in boston"), "intent"));
        Assert.Equal(404, (await admin.ApiPost("/v1/admin/intents/models/9/activate", null)).Status);
        var models = (await admin.ApiGet("/v1/admin/intents/models")).Body.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([2, 1], models.Select(m => m.GetProperty("version").GetInt32()));
        Assert.Equal([false, true], models.Select(m => m.GetProperty("live").GetBoolean()));
    }

    public static TheoryData<string, string, string, int, string, int?> BadUploads() => new()
    {
        { "malformed json line", "{\"text\":\"a\",\"intent\":\"x\"}\n{\"text\":\"b\",\"intent\":\"y\"}\n{\"text\": oops", "application/x-ndjson", 400, "malformed_training_data", 3 },
        { "missing intent", "{\"text\":\"a\",\"intent\":\"x\"}\n\n{\"text\":\"b\"}", "application/jsonl", 400, "malformed_training_data", 3 },
        { "csv with three fields", "text,intent\nhello,greet\nbye,leave,extra", "text/csv", 400, "malformed_training_data", 3 },
        { "csv unterminated quote", "text,intent\n\"hello,greet", "text/csv", 400, "malformed_training_data", 2 },
        { "one label", "a,x\nb,x\nc,x\nd,x", "text/csv", 400, "too_few_labels", null },
        { "too few examples of a label", "a,x\nb,x\nc,x\nd,y", "text/csv", 400, "too_few_examples", null },
        { "empty body", "", "text/csv", 400, "too_few_labels", null },
        { "json instead of lines", "[{\"text\":\"a\",\"intent\":\"x\"}]", "application/json", 415, "unsupported_media_type", null },
    };

    [Theory]
    [MemberData(nameof(BadUploads))]
    public async Task Bad_uploads_get_a_problem_with_a_stable_code_and_change_nothing(string why, string body, string contentType, int expected, string code, int? line)
    {
        using var admin = node.Client("t-intent-bad", "ada", "admin");
        var (status, problem) = await UploadAsync(admin, body, contentType);
        Assert.True(expected == status, $"{why}: {status} {problem}");
        Assert.Equal(code, problem.Code());
        if (line is { } l) Assert.Equal(l, problem.GetProperty("line").GetInt32());
        Assert.Equal(0, (await admin.ApiGet("/v1/admin/intents/models")).Body.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task An_upload_over_the_size_limit_gets_413()
    {
        using var admin = node.Client("t-intent-huge", "ada", "admin");
        var line = JsonSerializer.Serialize(new { text = new string('x', 900), intent = "a" }) + "\n";
        var (status, problem) = await UploadAsync(admin, string.Concat(Enumerable.Repeat(line, (9 << 20) / line.Length)), "application/x-ndjson");
        Assert.Equal(413, status);
        Assert.Equal("payload_too_large", problem.Code());
        Assert.Equal(0, (await admin.ApiGet("/v1/admin/intents/models")).Body.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Non_admins_get_403()
    {
        using var member = node.Client("t-intent-403", "mia");
        Assert.Equal(403, (await UploadAsync(member, JsonLines(Examples()), "application/x-ndjson")).Status);
        Assert.Equal(403, (await member.ApiGet("/v1/admin/intents/models")).Status);
        Assert.Equal(403, (await member.ApiPost("/v1/admin/intents/models/1/activate", null)).Status);
    }
}

/// <summary>
/// Two nodes of one cluster over one PostgreSQL: a version trained on one node becomes live on the other within its
/// version check, with no restart, and so does the next version.
/// </summary>
public sealed class IntentTrainingTwoNodeTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private const string Tenant = "t-intent-two";
    private readonly List<Microsoft.AspNetCore.Builder.WebApplication> _nodes = [];
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(Hubs.HubNode.Secret, null, null, null);

    public async Task InitializeAsync()
    {
        var database = Caas.Tests.Shared.TestDatabases.NewPostgresDatabase("intent2");
        var ports = new[] { Hubs.HubNode.FreeTcpPort(), Hubs.HubNode.FreeTcpPort() };
        var seed = $"akka.tcp://{Caas.Node.NodeHost.SystemName}@127.0.0.1:{ports[0]}";
        foreach (var port in ports)
            _nodes.Add(await Hubs.HubNode.StartAsync(new Caas.Node.NodeOptions
            {
                Postgres = database,
                Urls = "http://127.0.0.1:0",
                JwtSecret = Hubs.HubNode.Secret,
                MasterKey = Caas.Tests.Shared.TestDatabases.MasterKey,
                LogLevel = "Warning",
                SeedNodes = [seed],
                ExtraHocon = $"""
                    akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
                    akka.remote.dot-netty.tcp.port = {port}
                    akka.loglevel = WARNING
                    akka.cluster.sharding.retry-interval = 500ms
                    """,
            }, new Dictionary<string, string?>()));
    }

    public async Task DisposeAsync()
    {
        foreach (var node in Enumerable.Reverse(_nodes))
        {
            try
            {
                await node.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
                await node.DisposeAsync();
            }
            catch (Exception e)
            {
                output.WriteLine($"a node did not stop cleanly: {e.Message}");
            }
        }
    }

    private HttpClient Client(int node, string user, params string[] roles)
    {
        var client = new HttpClient { BaseAddress = new Uri(_nodes[node].Urls.First()), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, user, roles));
        return client;
    }

    private static async Task<JsonElement> IntentOnAsync(HttpClient client, string conversation, string text)
    {
        var seq = (await client.PostMessageAsync(conversation, text)).GetProperty("seq").GetInt64();
        var (_, page) = await client.ApiGet($"/v1/messages/conversations/{conversation}?after_seq={seq - 1}");
        var message = page.GetProperty("items").EnumerateArray().Single(m => m.GetProperty("seq").GetInt64() == seq);
        return message.GetProperty("enrichment").EnumerateObject().First(p => p.Name.Equals("results", StringComparison.OrdinalIgnoreCase)).Value
            .EnumerateArray().Select(r => r.EnumerateObject().ToDictionary(p => p.Name.ToLowerInvariant(), p => p.Value))
            .Single(r => r["name"].GetString() == "intent")["data"];
    }

    private static async Task<JsonElement> EventuallyFromAsync(HttpClient client, string conversation, string text, string model)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var intent = await IntentOnAsync(client, conversation, text);
            if (intent.TryGetProperty("model", out var m) && m.GetString() == model) return intent;
            Assert.True(watch.Elapsed < IntentTrainingTests.Patience, $"no answer from {model} within {IntentTrainingTests.Patience}: {intent}");
            await Task.Delay(500);
        }
    }

    private static async Task TrainAsync(HttpClient admin, string suffix, int version)
    {
        var rows = from p in new Dictionary<string, string[]>
                   {
                       ["refund"] = ["i want my money back for {0}", "refund the {0} please", "how do i return the {0}", "give me a refund on {0}"],
                       ["track"] = ["where is my {0}", "track the {0} order", "when will the {0} arrive", "has my {0} shipped yet"],
                   }
                   from template in p.Value
                   from item in new[] { "shoes", "laptop", "sofa" }
                   select JsonSerializer.Serialize(new { text = string.Format(template, item), intent = p.Key + suffix });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/intents/train") { Content = new StringContent(string.Join("\n", rows), Encoding.UTF8) };
        request.Content.Headers.ContentType = new("application/x-ndjson");
        using var response = await admin.SendAsync(request);
        Assert.Equal(202, (int)response.StatusCode);
        var watch = Stopwatch.StartNew();
        while ((await admin.ApiGet("/v1/admin/intents/models")).Body.GetProperty("items").EnumerateArray()
               .Single(i => i.GetProperty("version").GetInt32() == version).Str("status") != "ready")
        {
            Assert.True(watch.Elapsed < IntentTrainingTests.Patience, $"v{version} not ready within {IntentTrainingTests.Patience}");
            await Task.Delay(200);
        }
    }

    [Fact(Timeout = 1_800_000)] // four waits of at most Patience each; only a hang comes near it
    public async Task A_version_trained_on_one_node_goes_live_on_the_other_without_a_restart()
    {
        using var admin = Client(0, "root", "admin");
        Assert.Equal(200, (await admin.ApiPut("/v1/admin/tenant/settings", new { message_rate_per_minute = 10_000 })).Status);
        using var onOther = Client(1, "root", "admin");
        var room = await onOther.CreateGroupAsync();

        await TrainAsync(admin, "", 1);
        var intent = await EventuallyFromAsync(onOther, room, "where is my laptop order", "tenant:v1");
        Assert.Equal("track", intent.GetProperty("intent").GetString());

        await TrainAsync(admin, "_v2", 2);
        intent = await EventuallyFromAsync(onOther, room, "i want a refund for the sofa", "tenant:v2");
        Assert.Equal("refund_v2", intent.GetProperty("intent").GetString());
    }
}
