using System.Diagnostics;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Caas.Node.Tests;

/// <summary>
/// The built <c>caas</c> command line run as a child process, as a user runs it: help, <c>dev-token</c> and the
/// argument checks of the commands that need no running node. (Commands against a running node: Caas.IntegrationTests.)
/// </summary>
public sealed class CommandLineTests
{
    /// <summary>caas.dll is copied next to the tests with its runtimeconfig and deps (a referenced executable project).</summary>
    private static readonly string CaasDll = Path.Combine(AppContext.BaseDirectory, "caas.dll");

    private sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;
    }

    private static async Task<Result> CaasAsync(string dataDir, IDictionary<string, string>? env, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dataDir,
        };
        start.ArgumentList.Add(CaasDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        // Only what the test says configures the child; nothing of this process's environment leaks in.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_DATA_DIR"] = dataDir;
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    private static Task<Result> CaasAsync(string dataDir, params string[] args) => CaasAsync(dataDir, null, args);

    private static async Task<System.Security.Claims.ClaimsIdentity> VerifyAsync(string token, string secret)
    {
        var key = new JwtSettings(secret, null, null, null).VerificationKey().Key;
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKey = key,
            ValidateIssuer = false,
            ValidateAudience = false,
        });
        Assert.True(result.IsValid, $"the token does not verify: {result.Exception}");
        return result.ClaimsIdentity;
    }

    [Fact]
    public async Task Help_lists_every_command()
    {
        var help = await CaasAsync(TestDatabases.NewSqliteDirectory(), "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var command in new[] { "run", "dev-token", "bench", "audit", "rebuild", "erase", "migrate", "train", "eval" })
            Assert.Contains($"  {command}", help.Stdout);
    }

    [Fact]
    public async Task An_unknown_command_or_option_is_refused_with_a_non_zero_exit()
    {
        var data = TestDatabases.NewSqliteDirectory();
        var unknown = await CaasAsync(data, "frobnicate");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("frobnicate", unknown.All);
        var badOption = await CaasAsync(data, "dev-token", "--tenant", "acme", "--user", "alice", "--colour", "blue");
        Assert.NotEqual(0, badOption.ExitCode);
        Assert.Contains("--colour", badOption.All);
        Assert.Empty(Directory.GetFiles(data));
    }

    [Fact]
    public async Task Dev_token_makes_a_private_dev_secret_once_and_signs_the_claims_asked_for()
    {
        var data = TestDatabases.NewSqliteDirectory();
        var first = await CaasAsync(data, "dev-token", "--tenant", "acme", "--user", "alice", "--role", "admin", "--role", "ingest", "--hours", "2");
        Assert.True(first.ExitCode == 0, first.All);
        var secretFile = Path.Combine(data, "jwt-secret");
        Assert.True(File.Exists(secretFile), "the dev secret is kept in the data directory");
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secretFile));
        var secret = File.ReadAllText(secretFile).Trim();

        var claims = await VerifyAsync(first.Stdout.Trim(), secret);
        Assert.Equal("alice", claims.FindFirst("sub")?.Value ?? claims.FindFirst(System.Security.Claims.ClaimTypes.NameIdentifier)?.Value);
        Assert.Equal("acme", claims.FindFirst("tenant_id")?.Value);
        Assert.Equal(["admin", "ingest"], claims.Claims.Where(c => c.Type is "roles" or "role" or System.Security.Claims.ClaimTypes.Role).Select(c => c.Value).Order());
        var expires = DateTimeOffset.FromUnixTimeSeconds(long.Parse(claims.FindFirst("exp")!.Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromHours(1), TimeSpan.FromHours(2.01));

        // The second token is signed with the same secret: the file is not regenerated.
        var second = await CaasAsync(data, "dev-token", "--tenant", "acme", "--user", "bob");
        Assert.Equal(0, second.ExitCode);
        Assert.Equal(secret, File.ReadAllText(secretFile).Trim());
        await VerifyAsync(second.Stdout.Trim(), secret);
    }

    [Fact]
    public async Task Dev_token_signs_with_CAAS_JWT_SECRET_when_it_is_set_and_writes_no_file()
    {
        var data = TestDatabases.NewSqliteDirectory();
        const string secret = "a-configured-secret-of-more-than-32-bytes-0123456789";
        var result = await CaasAsync(data, new Dictionary<string, string> { ["CAAS_JWT_SECRET"] = secret },
            "dev-token", "--tenant", "acme", "--user", "alice");
        Assert.True(result.ExitCode == 0, result.All);
        await VerifyAsync(result.Stdout.Trim(), secret);
        Assert.False(File.Exists(Path.Combine(data, "jwt-secret")));
    }

    [Theory]
    [InlineData("missing tenant", new[] { "dev-token", "--user", "alice" }, "--tenant")]
    [InlineData("missing user", new[] { "dev-token", "--tenant", "acme" }, "--user")]
    [InlineData("tenant with a space", new[] { "dev-token", "--tenant", "ac me", "--user", "alice" }, "Tenant and user ids")]
    [InlineData("user with a slash", new[] { "dev-token", "--tenant", "acme", "--user", "../alice" }, "Tenant and user ids")]
    [InlineData("hours not a number", new[] { "dev-token", "--tenant", "acme", "--user", "alice", "--hours", "soon" }, "soon")]
    public async Task Dev_token_refuses_bad_arguments_prints_no_token_and_writes_no_secret(string why, string[] args, string message)
    {
        var data = TestDatabases.NewSqliteDirectory();
        var result = await CaasAsync(data, args);
        Assert.True(result.ExitCode != 0, why);
        Assert.Contains(message, result.All);
        Assert.DoesNotContain("eyJ", result.Stdout);
        Assert.False(File.Exists(Path.Combine(data, "jwt-secret")), why);
    }

    [Fact]
    public async Task Dev_token_on_a_node_that_verifies_with_a_public_key_says_to_use_the_identity_provider()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var result = await CaasAsync(TestDatabases.NewSqliteDirectory(), new Dictionary<string, string> { ["CAAS_JWT_PUBLIC_KEY"] = rsa.ExportSubjectPublicKeyInfoPem() },
            "dev-token", "--tenant", "acme", "--user", "alice");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("identity provider", result.Stderr);
    }

    [Theory]
    [InlineData("train without --task", new[] { "train", "--data", "x.jsonl", "--out", "m" }, "--task")]
    [InlineData("train with an unknown task", new[] { "train", "--task", "colour", "--data", "DATA", "--out", "m" }, "unknown task 'colour'")]
    [InlineData("train on a missing file", new[] { "train", "--task", "intent", "--data", "no-such.jsonl", "--out", "m" }, "no such data file")]
    [InlineData("eval without --data", new[] { "eval", "--task", "intent" }, "--data")]
    [InlineData("erase without a user", new[] { "erase", "--tenant", "acme" }, "--user")]
    public async Task Commands_refuse_bad_arguments_with_a_non_zero_exit_and_a_message(string why, string[] args, string message)
    {
        var data = TestDatabases.NewSqliteDirectory();
        var dataFile = Path.Combine(data, "labelled.jsonl");
        File.WriteAllText(dataFile, "{\"text\":\"hello there\",\"intent\":\"greet\"}\n{\"text\":\"bye now\",\"intent\":\"leave\"}\n");
        var result = await CaasAsync(data, args.Select(a => a == "DATA" ? dataFile : a).ToArray());
        Assert.True(result.ExitCode != 0, $"{why}: exit 0, {result.All}");
        Assert.Contains(message, result.All);
        Assert.False(Directory.Exists(Path.Combine(data, "m")), why);
    }

    [Fact]
    public async Task Train_and_eval_an_intent_model_from_a_labelled_file()
    {
        var data = TestDatabases.NewSqliteDirectory();
        var file = Path.Combine(data, "labelled.jsonl");
        var lines = new List<string>();
        foreach (var city in new[] { "paris", "tokyo", "berlin", "rome", "oslo", "lima" })
        {
            lines.Add($"{{\"text\":\"book a flight to {city}\",\"intent\":\"book_flight\"}}");
            lines.Add($"{{\"text\":\"i need a plane ticket to {city}\",\"intent\":\"book_flight\"}}");
            lines.Add($"{{\"text\":\"what is the weather in {city}\",\"intent\":\"weather\"}}");
            lines.Add($"{{\"text\":\"will it rain in {city} today\",\"intent\":\"weather\"}}");
        }
        File.WriteAllLines(file, lines);
        var model = Path.Combine(data, "model");
        var train = await CaasAsync(data, "train", "--task", "intent", "--data", file, "--out", model);
        Assert.True(train.ExitCode == 0, train.All);
        Assert.Contains("2 intents", train.Stdout);
        Assert.True(File.Exists(Path.Combine(model, "intent.zip")));

        var eval = await CaasAsync(data, "eval", "--task", "intent", "--data", file, "--model", model);
        Assert.True(eval.ExitCode == 0, eval.All);
        Assert.NotEmpty(eval.Stdout.Trim().Split('\n').Last());
    }
}
