using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;
using Caas.Actors.Common;
using Caas.Streams.Audit;
using Spectre.Console;

namespace Caas.Node.Audit;

/// <summary>
/// Operator commands that act on a running node through its admin API, so the node that owns the work (the projection
/// singleton, the session entity that records an erasure) does it while it keeps serving:
/// <c>caas rebuild NAME</c> and <c>caas erase --tenant T --user U</c>. Without <c>--token</c> they sign a short-lived
/// token with the node's configured secret (CAAS_JWT_SECRET, or the dev secret in the data directory).
/// </summary>
public static class AdminClientCommands
{
    internal static readonly Option<string?> Url = new("--url") { Description = "The node's base URL (default http://127.0.0.1:5080, or ASPNETCORE_URLS)." };
    internal static readonly Option<string?> Token = new("--token") { Description = "A bearer token (default: one signed with the node's configured secret)." };
    internal static readonly Option<string?> Data = new("--data") { Description = "Data directory holding the dev secret (default ./data, or CAAS_DATA_DIR)." };

    public static Command Rebuild()
    {
        var name = new Argument<string>("name") { Description = $"The read model to rebuild: {string.Join(", ", ProjectionRebuilds.Names)}." };
        var command = new Command("rebuild", "Empty a read model and rebuild it from the journal on the running node, showing progress.")
            { name, Url, Token, Data };
        command.SetAction(async (parse, ct) =>
        {
            var projection = parse.GetValue(name)!;
            if (!ProjectionRebuilds.Names.Contains(projection))
                return Fail($"Unknown read model '{projection}'; known: {string.Join(", ", ProjectionRebuilds.Names)}.");
            using var http = Client(parse, "operators", ["operator"], out var error);
            if (http is null) return Fail(error!);
            var path = $"/v1/admin/projections/{Uri.EscapeDataString(projection)}/rebuild";
            var (status, body) = await SendAsync(http, HttpMethod.Post, path, ct);
            if (status != 202) return Fail($"{status}: {body}");

            var showProgress = !Console.IsOutputRedirected;
            JsonElement state = body;
            async Task<bool> PollAsync()
            {
                await Task.Delay(500, ct);
                var (s, b) = await SendAsync(http, HttpMethod.Get, path, ct);
                if (s != 200) throw new InvalidOperationException($"{s}: {b}");
                state = b;
                return b.GetProperty("state").GetString() == "done";
            }
            if (showProgress)
            {
                await AnsiConsole.Progress().StartAsync(async progress =>
                {
                    var bar = progress.AddTask($"rebuilding {projection}", maxValue: Math.Max(1, state.GetProperty("target_offset").GetInt64()));
                    while (!await PollAsync()) bar.Value = state.GetProperty("offset").GetInt64();
                    bar.Value = bar.MaxValue;
                });
            }
            else
            {
                while (!await PollAsync()) { }
            }
            Console.WriteLine($"rebuilt={projection} offset={state.GetProperty("offset").GetInt64()} target_offset={state.GetProperty("target_offset").GetInt64()} " +
                              $"started_at={state.GetProperty("started_at").GetString()} completed_at={state.GetProperty("completed_at").GetString()}");
            return 0;
        });
        return command;
    }

    public static Command Erase()
    {
        var tenant = new Option<string>("--tenant") { Description = "The user's tenant.", Required = true };
        var user = new Option<string>("--user") { Description = "The user to erase.", Required = true };
        var command = new Command("erase",
            "GDPR erasure on the running node: destroy the user's data keys, so their message content reads as erased everywhere; the journal and its hash chain stay intact.")
            { tenant, user, Url, Token, Data };
        command.SetAction(async (parse, ct) =>
        {
            var t = parse.GetValue(tenant)!;
            var u = parse.GetValue(user)!;
            if (!Ids.IsValid(t) || !Ids.IsValid(u)) return Fail("Tenant and user ids are 1-128 of A-Z a-z 0-9 _ . @ -");
            using var http = Client(parse, t, ["admin"], out var error);
            if (http is null) return Fail(error!);
            var (status, body) = await SendAsync(http, HttpMethod.Delete, $"/v1/admin/users/{Uri.EscapeDataString(u)}", ct);
            if (status != 200) return Fail($"{status}: {body}");
            Console.WriteLine(body.GetRawText());
            return 0;
        });
        return command;
    }

    internal static HttpClient? Client(ParseResult parse, string tenant, string[] roles, out string? error)
    {
        var options = NodeOptions.FromEnvironment();
        options = options with { DataDir = parse.GetValue(Data) ?? options.DataDir };
        var token = parse.GetValue(Token);
        if (token is null && options.JwtPublicKey is not null && options.JwtSecret is null)
        {
            error = "This node verifies tokens with a public key: pass --token from your identity provider.";
            return null;
        }
        token ??= options.Jwt().Issue(tenant, "caas-cli", roles, TimeSpan.FromMinutes(30));
        var url = parse.GetValue(Url) ?? options.Urls.Split(';')[0].Replace("://+", "://127.0.0.1").Replace("://*", "://127.0.0.1").Replace("://0.0.0.0", "://127.0.0.1");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseAddress))
        {
            error = $"--url '{url}' is not an absolute URL.";
            return null;
        }
        error = null;
        var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    internal static async Task<(int Status, JsonElement Body)> SendAsync(HttpClient http, HttpMethod method, string path, CancellationToken ct)
    {
        using var response = await http.SendAsync(new HttpRequestMessage(method, path), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        JsonElement body = default;
        if (text.Length > 0)
        {
            try
            {
                body = JsonDocument.Parse(text).RootElement.Clone();
            }
            catch (JsonException)
            {
                body = JsonDocument.Parse(JsonSerializer.Serialize(text)).RootElement.Clone();
            }
        }
        return ((int)response.StatusCode, body);
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 2;
    }
}
