using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace Caas.Web.Turn;

/// <summary>
/// A <c>stun:</c>, <c>turn:</c> or <c>turns:</c> URI (RFC 7064, RFC 7065), as <c>RTCPeerConnection</c> takes it:
/// <c>turn:host[:port][?transport=udp|tcp]</c>. Default ports 3478 (5349 for <c>turns:</c>); transport udp for
/// <c>stun:</c>/<c>turn:</c> and tcp (TLS) for <c>turns:</c>.
/// </summary>
public sealed partial record TurnUri(string Scheme, string Host, int Port, string Transport, string Text)
{
    [GeneratedRegex(@"\A(?<scheme>stuns?|turns?):(?<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:(?<port>[0-9]{1,5}))?(\?transport=(?<transport>udp|tcp))?\z")]
    private static partial Regex Pattern();

    public bool IsTurn => Scheme is "turn" or "turns";

    public bool IsTls => Scheme is "turns" or "stuns";

    public static TurnUri? TryParse(string? text, out string error)
    {
        error = string.Empty;
        var m = text is null ? null : Pattern().Match(text.Trim());
        if (m is null || !m.Success)
        {
            error = "A stun:, turn: or turns: URI such as turn:turn.example.com:3478?transport=udp.";
            return null;
        }
        var scheme = m.Groups["scheme"].Value;
        if (scheme == "stuns")
        {
            error = "stuns: is not supported; use stun: or turns:.";
            return null;
        }
        if (scheme == "stun" && m.Groups["transport"].Success)
        {
            error = "A stun: URI takes no transport.";
            return null;
        }
        var port = scheme == "turns" ? 5349 : 3478;
        if (m.Groups["port"].Success && (!int.TryParse(m.Groups["port"].Value, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            error = "The port is between 1 and 65535.";
            return null;
        }
        var host = m.Groups["host"].Value;
        if (host.StartsWith('[') && !IPAddress.TryParse(host.Trim('[', ']'), out _))
        {
            error = "Not an IPv6 address.";
            return null;
        }
        var transport = m.Groups["transport"].Success ? m.Groups["transport"].Value : scheme == "turns" ? "tcp" : "udp";
        if (scheme == "turns" && transport == "udp")
        {
            error = "turns: runs over TLS (tcp); DTLS is not supported.";
            return null;
        }
        return new TurnUri(scheme, host.Trim('[', ']'), port, transport, text!.Trim());
    }
}
