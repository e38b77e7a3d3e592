using System.Buffers.Binary;
using System.Security.Cryptography;
using Caas.Web.Turn;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Turn;

/// <summary>The pure parts of TURN: REST credentials, URIs, settings, the STUN codec.</summary>
public sealed class TurnUnitTests
{
    [Fact]
    public void Credentials_follow_the_rest_convention()
    {
        // Expected value from: printf '%s' "1700000000:alice" | openssl dgst -binary -sha1 -hmac "s3cret" | base64
        var (username, credential) = TurnCredentials.Mint("s3cret", "alice", DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
        Assert.Equal("1700000000:alice", username);
        Assert.Equal("TtElzSjT0GdnTQ9xdcRNxx96yQs=", credential);
    }

    [Theory]
    [InlineData("turn:127.0.0.1:3479?transport=udp", "turn", "127.0.0.1", 3479, "udp")]
    [InlineData("turn:turn.example.com", "turn", "turn.example.com", 3478, "udp")]
    [InlineData("turn:[::1]:5000?transport=tcp", "turn", "::1", 5000, "tcp")]
    [InlineData("turns:turn.example.com", "turns", "turn.example.com", 5349, "tcp")]
    [InlineData("stun:stun.example.com:19302", "stun", "stun.example.com", 19302, "udp")]
    public void Uris_parse(string text, string scheme, string host, int port, string transport)
    {
        var uri = TurnUri.TryParse(text, out var error);
        Assert.True(uri is not null, error);
        Assert.Equal((scheme, host, port, transport, text), (uri!.Scheme, uri.Host, uri.Port, uri.Transport, uri.Text));
    }

    [Theory]
    [InlineData("http://example.com")]
    [InlineData("turn:")]
    [InlineData("turn:host:70000")]
    [InlineData("turn:host?transport=sctp")]
    [InlineData("turns:host?transport=udp")]
    [InlineData("stun:host?transport=tcp")]
    [InlineData("turn:host name")]
    [InlineData("turn:[zz::1]")]
    [InlineData(null)]
    public void Bad_uris_are_refused(string? text) => Assert.Null(TurnUri.TryParse(text, out _));

    [Fact]
    public void Settings_come_from_the_environment()
    {
        var env = new Dictionary<string, string?>
        {
            ["CAAS_TURN_SERVERS"] = " turn:127.0.0.1:3479?transport=udp , stun:127.0.0.1:3480",
            ["CAAS_TURN_SECRET"] = "shh",
            ["CAAS_TURN_TTL"] = "600",
            ["CAAS_TURN_HEALTH_INTERVAL"] = "1",
        };
        var s = TurnSettings.FromEnvironment(n => env.GetValueOrDefault(n));
        Assert.Equal(["turn:127.0.0.1:3479?transport=udp", "stun:127.0.0.1:3480"], s.Servers);
        Assert.Equal(("shh", 600.0, 1.0, 1.0), (s.Secret, s.Ttl.TotalSeconds, s.HealthInterval.TotalSeconds, s.CheckTimeout.TotalSeconds));

        var defaults = TurnSettings.FromEnvironment(_ => null);
        Assert.Equal((86_400.0, 10.0, 5.0), (defaults.Ttl.TotalSeconds, defaults.HealthInterval.TotalSeconds, defaults.CheckTimeout.TotalSeconds));
        Assert.Throws<InvalidOperationException>(() => TurnSettings.FromEnvironment(n => n == "CAAS_TURN_SERVERS" ? "http://x" : null));
        Assert.Throws<InvalidOperationException>(() => TurnSettings.FromEnvironment(n => n == "CAAS_TURN_HEALTH_INTERVAL" ? "0" : null));
    }

    [Fact]
    public async Task With_no_server_configured_the_list_is_empty_with_a_warning()
    {
        using var services = new ServiceCollection().BuildServiceProvider();
        using var turn = new TurnServers(TurnSettings.None, services, Microsoft.Extensions.Logging.Abstractions.NullLogger<TurnServers>.Instance);
        await turn.RoundAsync(CancellationToken.None);
        var list = turn.IceServersFor("alice", DateTimeOffset.UtcNow);
        Assert.Empty(list.IceServers);
        Assert.Equal(86_400, list.TtlSeconds);
        Assert.Contains("No TURN server is configured", list.Warning);
    }

    [Fact]
    public void Message_integrity_covers_the_message_with_its_own_length()
    {
        var key = StunMessage.LongTermKey("1700000000:alice", "caas.test", "pw");
        Assert.Equal(MD5.HashData("1700000000:alice:caas.test:pw"u8.ToArray()), key);
        var request = StunMessage.Request(StunMessage.Allocate)
            .Add(StunMessage.AttrRequestedTransport, [StunMessage.ProtocolUdp, 0, 0, 0])
            .Add(StunMessage.AttrUsername, "1700000000:alice"); // 16 bytes, and a realm that needs padding
        request.Add(StunMessage.AttrRealm, "caas.test");
        var wire = request.Encode(key);

        Assert.Equal(0, wire.Length % 4);
        Assert.Equal(wire.Length - StunMessage.HeaderLength, BinaryPrimitives.ReadUInt16BigEndian(wire.AsSpan(2)));
        var decoded = StunMessage.TryDecode(wire)!;
        Assert.Equal(StunMessage.Allocate, decoded.Method);
        Assert.Equal("caas.test", decoded.GetString(StunMessage.AttrRealm));
        Assert.Equal(request.TransactionId, decoded.TransactionId);
        // The HMAC is over everything before the attribute, with the header's length already counting it.
        var mac = decoded.Get(StunMessage.AttrMessageIntegrity)!;
        Assert.Equal(HMACSHA1.HashData(key, wire.AsSpan(0, wire.Length - 24)), mac);
        Assert.Null(StunMessage.TryDecode(wire.AsSpan(0, wire.Length - 4)));
    }
}
