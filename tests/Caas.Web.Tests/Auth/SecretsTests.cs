using System.Text.RegularExpressions;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Auth;
using Microsoft.AspNetCore.Builder;

namespace Caas.Web.Tests.Auth;

public sealed class SecretFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("caas-secrets-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Generated_key_files_are_owner_only_and_stable()
    {
        if (OperatingSystem.IsWindows()) return; // Unix file modes only
        var options = new NodeOptions { DataDir = _dir };
        var secret = options.Jwt().Secret;
        var master = options.ContentMasterKey().Id;
        foreach (var name in new[] { "jwt-secret", "master-key" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, name)));
        Assert.Equal(secret, options.Jwt().Secret);
        Assert.Equal(master, options.ContentMasterKey().Id);
    }

    [Theory]
    [InlineData("jwt-secret", "0640")]
    [InlineData("master-key", "0604")]
    [InlineData("master-key", "0620")]
    public void A_key_file_readable_by_others_is_refused_with_the_fix(string name, string octal)
    {
        if (OperatingSystem.IsWindows()) return; // Unix file modes only
        var options = new NodeOptions { DataDir = _dir };
        _ = options.Jwt();
        _ = options.ContentMasterKey();
        var file = Path.Combine(_dir, name);
        File.SetUnixFileMode(file, (UnixFileMode)Convert.ToInt32(octal, 8));
        var e = Assert.Throws<InvalidOperationException>(() => name == "jwt-secret" ? (object)options.Jwt() : options.ContentMasterKey());
        Assert.Contains(file, e.Message);
        Assert.Contains($"chmod 600 {file}", e.Message);
    }

    [Fact]
    public async Task A_node_does_not_start_on_a_world_readable_master_key()
    {
        if (OperatingSystem.IsWindows()) return; // Unix file modes only
        var file = Path.Combine(_dir, "master-key");
        await File.WriteAllTextAsync(file, Convert.ToBase64String(new byte[32]));
        File.SetUnixFileMode(file, (UnixFileMode)Convert.ToInt32("644", 8));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => NodeHost.BuildAsync(new NodeOptions
        {
            DataDir = _dir, Urls = "http://127.0.0.1:0", JwtSecret = NodeFixture.Secret, LogLevel = "Warning",
        }));
        Assert.Contains("chmod 600", e.Message);
    }
}

/// <summary>The compose file can only be checked statically here (no Docker): no secret has a fallback value.</summary>
public sealed class ComposeSecretsTests
{
    private static string ComposeFile()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Caas.sln"))) return Path.Combine(dir.FullName, "docker-compose.yml");
        throw new FileNotFoundException("Caas.sln not found above the test's directory.");
    }

    private static readonly Regex Secretish = new(@"SECRET|KEY|PASSWORD|TOKEN", RegexOptions.CultureInvariant);

    [Fact]
    public void Every_secret_is_required_and_none_has_a_default()
    {
        var lines = File.ReadAllLines(ComposeFile()).Where(l => !l.TrimStart().StartsWith('#')).ToArray();
        var references = lines.SelectMany(l => Regex.Matches(l, @"\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(?<op>:?[-?+]?)(?<rest>[^}]*)\}").Cast<Match>()).ToList();
        var secretRefs = references.Where(m => Secretish.IsMatch(m.Groups["name"].Value)).ToList();
        Assert.Contains(secretRefs, m => m.Groups["name"].Value == "CAAS_JWT_SECRET");
        Assert.Contains(secretRefs, m => m.Groups["name"].Value == "CAAS_MASTER_KEY");
        foreach (var m in secretRefs)
        {
            Assert.True(m.Groups["op"].Value == ":?", $"{m.Value} must use ${{VAR:?message}} (no fallback)");
            Assert.False(string.IsNullOrWhiteSpace(m.Groups["rest"].Value), $"{m.Value} should say what to set");
        }

        // A secret-named key whose value is a literal (not a required ${VAR:?}) is a shipped secret.
        foreach (var line in lines)
        {
            var kv = Regex.Match(line, @"^\s*(?<key>[A-Z][A-Z0-9_]*)\s*:\s*(?<value>.+?)\s*$");
            if (!kv.Success || !Secretish.IsMatch(kv.Groups["key"].Value)) continue;
            Assert.Matches(@"^""?\$\{[A-Z0-9_]+:\?[^}]+\}""?$", kv.Groups["value"].Value);
        }
        // Connection strings carry their password from a required variable too.
        foreach (var line in lines.Where(l => l.Contains("Password=", StringComparison.OrdinalIgnoreCase)))
            Assert.Matches(@"Password=\$\{[A-Z0-9_]+:\?[^}]+\}", line);
    }
}

/// <summary>A key rotation: tokens signed with the previous secret pass while it is configured, and only then.</summary>
public sealed class JwtRotationTests : IAsyncLifetime
{
    private const string Previous = "previous-secret-previous-secret-previous-0123";
    private WebApplication? _app;
    private Uri _base = null!;

    public async Task InitializeAsync()
    {
        _app = await NodeHost.BuildAsync(new NodeOptions
        {
            Postgres = TestDatabases.NewPostgresDatabase("rotation"),
            Urls = "http://127.0.0.1:0",
            JwtSecret = NodeFixture.Secret,
            JwtSecretPrevious = Previous,
            LogLevel = "Warning",
        });
        await _app.StartAsync();
        _base = new Uri(_app.Urls.First());
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task<int> StatusWith(string token)
    {
        using var client = new HttpClient { BaseAddress = _base };
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        return (int)(await client.GetAsync("/v1/conversations")).StatusCode;
    }

    [Fact]
    public async Task Current_and_previous_secrets_pass_any_other_fails()
    {
        Assert.Equal(200, await StatusWith(new JwtSettings(NodeFixture.Secret, null, null, null).Issue("acme", "alice")));
        Assert.Equal(200, await StatusWith(new JwtSettings(Previous, null, null, null).Issue("acme", "alice")));
        Assert.Equal(401, await StatusWith(new JwtSettings("some-other-secret-some-other-secret-0123456", null, null, null).Issue("acme", "alice")));
    }

    [Fact]
    public void The_previous_key_is_only_accepted_when_configured()
    {
        Assert.Single(new JwtSettings(NodeFixture.Secret, null, null, null).VerificationKeys());
        Assert.Equal(2, new JwtSettings(NodeFixture.Secret, null, null, null, Previous).VerificationKeys().Count);
        Assert.Throws<InvalidOperationException>(() => new JwtSettings(NodeFixture.Secret, null, null, null, "short").VerificationKeys());
    }

    [Fact]
    public void Previous_settings_come_from_the_environment()
    {
        var env = new Dictionary<string, string> { ["CAAS_JWT_SECRET"] = NodeFixture.Secret, ["CAAS_JWT_SECRET_PREVIOUS"] = Previous, ["CAAS_JWT_PUBLIC_KEY_PREVIOUS"] = "pem" };
        var options = NodeOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(Previous, options.Jwt().SecretPrevious);
        Assert.Equal("pem", options.Jwt().PublicKeyPemPrevious);
    }
}

/// <summary>A node without a previous secret rejects a token signed with one (the rotation is over).</summary>
public sealed class JwtWithoutRotationTests(NodeFixture node) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task A_token_signed_with_a_retired_secret_is_401()
    {
        using var client = node.WithToken(new JwtSettings("previous-secret-previous-secret-previous-0123", null, null, null).Issue("acme", "alice"));
        var (status, body) = await client.ApiGet("/v1/conversations");
        Assert.Equal(401, status);
        Assert.Equal("unauthenticated", body.Code());
    }
}
