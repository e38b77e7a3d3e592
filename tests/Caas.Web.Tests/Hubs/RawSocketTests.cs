using System.Net.WebSockets;
using System.Text;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// Misbehaving sockets, spoken to in the raw SignalR JSON protocol: each ends only its own connection, and a
/// well-behaved client beside them keeps working.
/// </summary>
public sealed class RawSocketTests(HubNode node) : IClassFixture<HubNode>
{
    private const char RecordSeparator = '\u001e';

    private async Task<ClientWebSocket> OpenAsync(string tenant, string user)
    {
        var socket = new ClientWebSocket();
        var uri = new UriBuilder(node.BaseAddress) { Scheme = "ws", Path = "/hubs/chat", Query = "access_token=" + node.Jwt.Issue(tenant, user) }.Uri;
        await socket.ConnectAsync(uri, CancellationToken.None);
        return socket;
    }

    private static Task SendAsync(ClientWebSocket socket, string text) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Reads frames until the server closes; answers everything it sent before closing.</summary>
    private static async Task<string> ReadUntilClosedAsync(ClientWebSocket socket, TimeSpan within)
    {
        using var cts = new CancellationTokenSource(within);
        var text = new StringBuilder();
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var r = await socket.ReceiveAsync(buffer, cts.Token);
                if (r.MessageType == WebSocketMessageType.Close) return text.ToString();
                text.Append(Encoding.UTF8.GetString(buffer, 0, r.Count));
            }
        }
        catch (WebSocketException)
        {
            return text.ToString(); // the server aborted the socket
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The server did not close the connection within {within.TotalSeconds} s; it sent: {text}");
            throw;
        }
    }

    private async Task<ClientWebSocket> HandshakenAsync(string tenant, string user)
    {
        var socket = await OpenAsync(tenant, user);
        await SendAsync(socket, "{\"protocol\":\"json\",\"version\":1}" + RecordSeparator);
        var buffer = new byte[1024];
        var r = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("{}" + RecordSeparator, Encoding.UTF8.GetString(buffer, 0, r.Count));
        return socket;
    }

    private async Task AssertBystanderWorksAsync(HubClient bystander, string room, string text)
    {
        var sent = await bystander.SendAsync(room, text);
        Assert.True(sent.Seq() > 0);
    }

    [Fact]
    public async Task A_socket_that_never_sends_the_handshake_is_closed()
    {
        using var rest = node.Rest("t-raw1", "alice");
        var room = await rest.CreateGroupAsync();
        await using var bystander = await node.ConnectAsync("t-raw1", "alice");
        using var silent = await OpenAsync("t-raw1", "mallory");
        await ReadUntilClosedAsync(silent, TimeSpan.FromSeconds(30));
        await AssertBystanderWorksAsync(bystander, room, "still fine");
    }

    [Fact]
    public async Task Bad_json_after_the_handshake_ends_that_connection_with_an_error()
    {
        using var rest = node.Rest("t-raw2", "alice");
        var room = await rest.CreateGroupAsync();
        await using var bystander = await node.ConnectAsync("t-raw2", "alice");
        using var socket = await HandshakenAsync("t-raw2", "mallory");
        await SendAsync(socket, "{\"type\":1,\"target\":\"JoinRoom\",\"arguments\":[" + RecordSeparator);
        var said = await ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(15));
        Assert.Contains("\"type\":7", said);
        Assert.Contains("error", said);
        await AssertBystanderWorksAsync(bystander, room, "still fine");
    }

    [Fact]
    public async Task An_oversize_message_ends_that_connection()
    {
        using var rest = node.Rest("t-raw3", "alice");
        var room = await rest.CreateGroupAsync();
        await using var bystander = await node.ConnectAsync("t-raw3", "alice");
        using var socket = await HandshakenAsync("t-raw3", "mallory");
        var huge = new string('x', 200 * 1024);
        await SendAsync(socket, "{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[{\"conversation_id\":\"" + room +
                                "\",\"content\":\"" + huge + "\"}]}" + RecordSeparator);
        var said = await ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(15));
        Assert.DoesNotContain("\"type\":3", said); // no completion: the frame was never dispatched
        await AssertBystanderWorksAsync(bystander, room, "still fine");
        Assert.Equal(1, (await bystander.Ok("GetHistory", new { conversation_id = room })).GetProperty("items").GetArrayLength());
    }
}
