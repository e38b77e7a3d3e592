using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;

namespace Caas.Web.Turn;

/// <summary>What one check of a server found.</summary>
public sealed record StunProbeResult(bool Healthy, TimeSpan Latency, string? Error, IPEndPoint? Mapped = null, IPEndPoint? Relayed = null);

/// <summary>
/// A small STUN/TURN client for health checks (no package for it is served): a Binding request, and for <c>turn:</c>
/// servers an Allocate with a fresh REST credential (the 401 challenge gives realm and nonce; the second Allocate
/// carries MESSAGE-INTEGRITY with the long-term key) that a Refresh with lifetime 0 releases at once. UDP retransmits
/// (RFC 8489 §6.2.1, from 100 ms, doubling); TCP and TLS frame by the STUN header's length.
/// </summary>
public static class StunClient
{
    public static async Task<StunProbeResult> ProbeAsync(TurnUri uri, string? secret, TimeSpan timeout, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await using var channel = await OpenAsync(uri, cts.Token);
            var binding = await channel.ExchangeAsync(StunMessage.Request(StunMessage.Binding), null, cts.Token);
            if (!binding.IsSuccess) return Failed(clock, $"binding answered {Describe(binding)}");
            var mapped = binding.XorAddress();
            if (!uri.IsTurn) return new StunProbeResult(true, clock.Elapsed, null, mapped);
            if (secret is null) return Failed(clock, "no secret for this TURN server");

            var (username, password) = TurnCredentials.Mint(secret, "caas-health", DateTimeOffset.UtcNow.AddMinutes(5));
            var challenge = await channel.ExchangeAsync(AllocateRequest(), null, cts.Token);
            if (challenge.Error?.Code != 401 || challenge.GetString(StunMessage.AttrRealm) is not { } realm
                                             || challenge.GetString(StunMessage.AttrNonce) is not { } nonce)
                return Failed(clock, $"unauthenticated allocate answered {Describe(challenge)}");
            var key = StunMessage.LongTermKey(username, realm, password);
            var allocated = await channel.ExchangeAsync(Authenticated(AllocateRequest(), username, realm, nonce), key, cts.Token);
            if (allocated.Error?.Code == 438 && allocated.GetString(StunMessage.AttrNonce) is { } fresh)
            {
                nonce = fresh;
                allocated = await channel.ExchangeAsync(Authenticated(AllocateRequest(), username, realm, nonce), key, cts.Token);
            }
            if (!allocated.IsSuccess) return Failed(clock, $"allocate answered {Describe(allocated)}");
            var relayed = allocated.XorAddress(StunMessage.AttrXorRelayedAddress);

            var released = await channel.ExchangeAsync(Authenticated(StunMessage.Request(StunMessage.Refresh).AddLifetime(0), username, realm, nonce), key, cts.Token);
            if (released.Error?.Code == 438 && released.GetString(StunMessage.AttrNonce) is { } again)
                released = await channel.ExchangeAsync(Authenticated(StunMessage.Request(StunMessage.Refresh).AddLifetime(0), username, realm, again), key, cts.Token);
            if (!released.IsSuccess) return Failed(clock, $"refresh (release) answered {Describe(released)}");
            return new StunProbeResult(true, clock.Elapsed, null, mapped, relayed);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return Failed(clock, $"no answer within {timeout.TotalSeconds:0.###} s");
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException or InvalidDataException)
        {
            return Failed(clock, e is SocketException s ? $"socket: {s.SocketErrorCode}" : $"{e.GetType().Name}: {e.Message}");
        }
    }

    private static StunMessage AllocateRequest() =>
        StunMessage.Request(StunMessage.Allocate).Add(StunMessage.AttrRequestedTransport, [StunMessage.ProtocolUdp, 0, 0, 0]);

    private static StunMessage Authenticated(StunMessage m, string username, string realm, string nonce) =>
        m.Add(StunMessage.AttrUsername, username).Add(StunMessage.AttrRealm, realm).Add(StunMessage.AttrNonce, nonce);

    private static StunProbeResult Failed(Stopwatch clock, string error) => new(false, clock.Elapsed, error);

    private static string Describe(StunMessage m) => m.Error is { } e ? $"{e.Code} {e.Reason}".Trim() : $"type 0x{m.Type:x4}";

    private static async Task<IStunChannel> OpenAsync(TurnUri uri, CancellationToken ct)
    {
        var addresses = IPAddress.TryParse(uri.Host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(uri.Host, ct);
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        var endpoint = new IPEndPoint(addresses[0], uri.Port);
        if (uri.Transport == "udp")
        {
            var socket = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                // Connected: only the server's datagrams arrive, and an ICMP port-unreachable fails the receive at once.
                await socket.ConnectAsync(endpoint, ct);
                return new UdpChannel(socket);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        var tcp = new TcpClient(endpoint.AddressFamily);
        try
        {
            await tcp.ConnectAsync(endpoint, ct);
            Stream stream = tcp.GetStream();
            if (uri.IsTls)
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = uri.Host }, ct);
                stream = tls;
            }
            return new StreamChannel(tcp, stream);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    private interface IStunChannel : IAsyncDisposable
    {
        Task<StunMessage> ExchangeAsync(StunMessage request, byte[]? integrityKey, CancellationToken ct);
    }

    private sealed class UdpChannel(Socket socket) : IStunChannel
    {
        private readonly byte[] _buffer = new byte[2048];

        public async Task<StunMessage> ExchangeAsync(StunMessage request, byte[]? integrityKey, CancellationToken ct)
        {
            var wire = request.Encode(integrityKey);
            var rto = TimeSpan.FromMilliseconds(100);
            while (true)
            {
                await socket.SendAsync(wire, SocketFlags.None, ct);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(rto);
                try
                {
                    while (true)
                    {
                        var n = await socket.ReceiveAsync(_buffer, SocketFlags.None, wait.Token);
                        if (StunMessage.TryDecode(_buffer.AsSpan(0, n)) is { } answer && answer.TransactionId.AsSpan().SequenceEqual(request.TransactionId))
                            return answer;
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // Lost or slow: send the same request again, waiting twice as long.
                    rto = TimeSpan.FromTicks(Math.Min(rto.Ticks * 2, TimeSpan.FromSeconds(1.6).Ticks));
                }
            }
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class StreamChannel(TcpClient tcp, Stream stream) : IStunChannel
    {
        public async Task<StunMessage> ExchangeAsync(StunMessage request, byte[]? integrityKey, CancellationToken ct)
        {
            await stream.WriteAsync(request.Encode(integrityKey), ct);
            var header = new byte[StunMessage.HeaderLength];
            while (true)
            {
                await stream.ReadExactlyAsync(header, ct);
                var total = StunMessage.FrameLength(header);
                if (total < 0) throw new InvalidDataException("Not a STUN message.");
                var frame = new byte[total];
                header.CopyTo(frame, 0);
                await stream.ReadExactlyAsync(frame.AsMemory(StunMessage.HeaderLength), ct);
                if (StunMessage.TryDecode(frame) is { } answer && answer.TransactionId.AsSpan().SequenceEqual(request.TransactionId))
                    return answer;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync();
            tcp.Dispose();
        }
    }
}
