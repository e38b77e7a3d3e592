using System.Net;
using System.Net.Sockets;

namespace Caas.Tests.Shared;

/// <summary>
/// TCP ports for the nodes tests start, from 22000–31999: above the test services' ports (14780–17599) and coturn's relay
/// ports (20000 on), and below the kernel's ephemeral range (32768–60999 on Linux by default). A port from bind(0)
/// comes from the ephemeral range, where another process's outgoing connection (a Ceph daemon's, a Kafka client's) can
/// take it between the test's probe and the node's bind; nothing takes a port from this range on its own. Each call
/// probes from a random point on, and never hands out the same port twice in one process.
/// </summary>
public static class TestPorts
{
    private const int First = 22_000, Count = 10_000;
    private static readonly object Gate = new();
    private static int _next = Random.Shared.Next(Count);

    public static int Free()
    {
        lock (Gate)
        {
            for (var tries = 0; tries < Count; tries++)
            {
                var port = First + _next++ % Count;
                if (CanBind(port)) return port;
            }
        }
        throw new InvalidOperationException($"No free TCP port on 127.0.0.1 in {First}-{First + Count - 1}.");
    }

    private static bool CanBind(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            listener.Stop();
        }
    }
}
