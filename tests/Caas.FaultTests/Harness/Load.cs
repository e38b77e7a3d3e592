using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Caas.Streams.Kafka;
using Confluent.Kafka;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace Caas.FaultTests.Harness;

/// <summary>One message a load stream sent, and what became of it.</summary>
public sealed class Sent(string stream, string channel, string conversation, string sender, string messageId, int index)
{
    public string Stream { get; } = stream;
    public string Channel { get; } = channel;
    public string Conversation { get; } = conversation;
    public string Sender { get; } = sender;
    public string MessageId { get; } = messageId;
    public int Index { get; } = index;
    public string Text => $"{Stream} #{Index}";
    public int Attempts { get; set; }
    /// <summary>An acknowledgement came back (REST 201/200, hub success, Kafka delivery report).</summary>
    public bool Acked { get; set; }
    public long? AckSeq { get; set; }
    public DateTime AckAt { get; set; }
    /// <summary>When the attempt that was acknowledged began.</summary>
    public DateTime AckedAttemptAt { get; set; }
    /// <summary>A final 4xx that is not a retry signal (recorded, never expected).</summary>
    public string? Rejected { get; set; }
    public string? LastError { get; set; }
}

/// <summary>
/// Sustained load on one tenant through REST, the hub and Kafka: per conversation one sender per channel, each sending
/// its messages one after another at a fixed pace. A send that gets no acknowledgement (error, timeout, connection
/// lost) is retried with the same message_id, on another node where the channel allows, until it is acknowledged or
/// its time is up; only then does the sender go on to its next message, so each sender's acknowledged messages must
/// appear in its send order.
/// </summary>
public sealed class Load : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(15) };
    private static readonly TimeSpan PerMessage = TimeSpan.FromSeconds(120);
    private readonly FaultCluster _cluster;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _streams = [];
    private readonly Stopwatch _clock = new();
    private IProducer<string, string>? _producer;

    public Load(FaultCluster cluster, string tenant, int conversations)
    {
        _cluster = cluster;
        Tenant = tenant;
        ConversationCount = conversations;
    }

    public string Tenant { get; }
    public int ConversationCount { get; }
    public List<string> Conversations { get; } = [];
    public ConcurrentQueue<Sent> Ledger { get; } = new();
    public ConcurrentDictionary<string, int> Errors { get; } = new();
    public TimeSpan Duration { get; private set; }

    public string Token(string user, params string[] roles) => FaultCluster.Jwt.Issue(Tenant, user, roles, TimeSpan.FromHours(6));

    /// <summary>The tenant's settings (a message rate above the load's) and its conversations, each with its three senders.</summary>
    public async Task SetupAsync()
    {
        var admin = Token("owner", "admin");
        var node = _cluster.Nodes[0].Url;
        await Rest.ExpectAsync(node, admin, HttpMethod.Put, "/v1/admin/tenant/settings", """{"message_rate_per_minute":10000}""", 200);
        for (var c = 0; c < ConversationCount; c++)
        {
            var body = JsonSerializer.Serialize(new { type = "group", title = $"fault {c}", members = new[] { $"r{c}", $"h{c}", $"k{c}" } });
            var created = await Rest.ExpectAsync(node, admin, HttpMethod.Post, "/v1/conversations", body, 201);
            Conversations.Add(created.GetProperty("id").GetString()!);
        }
    }

    /// <summary>Starts every sender; each pauses 3/<paramref name="rate"/> of a second between its messages per conversation.</summary>
    public void Start(double rate)
    {
        _producer = new ProducerBuilder<string, string>(new KafkaSettings { Bootstrap = _cluster.Services.Kafka, Profile = KafkaProfile.Compat09 }.ProducerConfig())
            .SetLogHandler((_, _) => { })
            .SetErrorHandler((_, _) => { })
            .Build();
        var pace = TimeSpan.FromSeconds(3.0 * ConversationCount / rate);
        _clock.Start();
        for (var c = 0; c < Conversations.Count; c++)
        {
            var conversation = Conversations[c];
            var i = c;
            _streams.Add(Task.Run(() => RestStreamAsync($"{Tenant}-rest{i}", conversation, $"r{i}", i, pace)));
            _streams.Add(Task.Run(() => HubStreamAsync($"{Tenant}-hub{i}", conversation, $"h{i}", i + 1, pace)));
            _streams.Add(Task.Run(() => KafkaStreamAsync($"{Tenant}-kafka{i}", conversation, $"k{i}", pace)));
        }
    }

    /// <summary>Stops the senders after their current message (acknowledged or out of time).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_streams).WaitAsync(PerMessage + TimeSpan.FromSeconds(60));
        Duration = _clock.Elapsed;
    }

    private void Error(string what) => Errors.AddOrUpdate(what, 1, (_, n) => n + 1);

    private async Task PaceAsync(TimeSpan pace)
    {
        try
        {
            await Task.Delay(pace, _stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RestStreamAsync(string stream, string conversation, string sender, int node, TimeSpan pace)
    {
        var token = Token(sender);
        for (var k = 1; !_stop.IsCancellationRequested && k <= 100_000; k++)
        {
            var sent = new Sent(stream, "rest", conversation, sender, $"{stream}-{k:D6}", k);
            Ledger.Enqueue(sent);
            var body = JsonSerializer.Serialize(new { conversation_id = conversation, content = new { type = "text", text = sent.Text }, message_id = sent.MessageId });
            var deadline = DateTime.UtcNow + PerMessage;
            while (!sent.Acked && sent.Rejected is null && DateTime.UtcNow < deadline)
            {
                sent.Attempts++;
                var began = DateTime.UtcNow;
                var url = _cluster.Nodes[node % _cluster.Nodes.Count].Url;
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(url, "/v1/messages")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    using var response = await Http.SendAsync(request);
                    var status = (int)response.StatusCode;
                    var text = await response.Content.ReadAsStringAsync();
                    if (status is 200 or 201)
                    {
                        sent.AckSeq = JsonDocument.Parse(text).RootElement.GetProperty("seq").GetInt64();
                        Ack(sent, began);
                        break;
                    }
                    Error($"rest {status}");
                    sent.LastError = $"{status} {text}";
                    if (status is >= 400 and < 500 and not 408 and not 429 and not 409)
                    {
                        sent.Rejected = sent.LastError;
                        break;
                    }
                    // 409 on a retry would be a product bug (the same sender's own id); record it and retry.
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
                {
                    Error("rest " + e.GetType().Name);
                    sent.LastError = e.Message;
                }
                node++;
                await Task.Delay(300);
            }
            await PaceAsync(pace);
        }
    }

    private async Task HubStreamAsync(string stream, string conversation, string sender, int node, TimeSpan pace)
    {
        var token = Token(sender);
        HubConnection? hub = null;
        try
        {
            for (var k = 1; !_stop.IsCancellationRequested && k <= 100_000; k++)
            {
                var sent = new Sent(stream, "hub", conversation, sender, $"{stream}-{k:D6}", k);
                Ledger.Enqueue(sent);
                var args = new { conversation_id = conversation, content = new { type = "text", text = sent.Text }, message_id = sent.MessageId };
                var deadline = DateTime.UtcNow + PerMessage;
                while (!sent.Acked && sent.Rejected is null && DateTime.UtcNow < deadline)
                {
                    sent.Attempts++;
                    var began = DateTime.UtcNow;
                    try
                    {
                        if (hub is null)
                        {
                            var url = _cluster.Nodes[node % _cluster.Nodes.Count].Url;
                            hub = new HubConnectionBuilder()
                                .WithUrl(new Uri(url, "/hubs/chat"), o =>
                                {
                                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                                    o.Transports = HttpTransportType.WebSockets;
                                    o.SkipNegotiation = true;
                                })
                                .Build();
                            hub.ServerTimeout = TimeSpan.FromSeconds(30);
                            using var connect = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                            await hub.StartAsync(connect.Token);
                        }
                        using var call = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                        var answer = await hub.InvokeAsync<JsonElement>("SendMessage", args, call.Token);
                        if (answer.TryGetProperty("success", out var ok) && ok.ValueKind == JsonValueKind.True)
                        {
                            sent.AckSeq = Json.FindLong(answer, "seq");
                            Ack(sent, began);
                            break;
                        }
                        var code = answer.TryGetProperty("error", out var error) && error.TryGetProperty("code", out var c) ? c.GetString() : "?";
                        Error("hub " + code);
                        sent.LastError = answer.ToString();
                        if (code is "validation_failed" or "not_found" or "forbidden" or "payload_too_large" or "message_id_conflict")
                        {
                            sent.Rejected = sent.LastError;
                            break;
                        }
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        Error("hub " + e.GetType().Name);
                        sent.LastError = e.Message;
                        if (hub is not null) await DisposeQuietly(hub);
                        hub = null;
                        node++;
                    }
                    await Task.Delay(300);
                }
                await PaceAsync(pace);
            }
        }
        finally
        {
            if (hub is not null) await DisposeQuietly(hub);
        }
    }

    private static async Task DisposeQuietly(HubConnection hub)
    {
        try
        {
            await hub.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception)
        {
            // A connection to a killed or frozen node cannot close cleanly; it is abandoned.
        }
    }

    private async Task KafkaStreamAsync(string stream, string conversation, string sender, TimeSpan pace)
    {
        for (var k = 1; !_stop.IsCancellationRequested && k <= 100_000; k++)
        {
            var sent = new Sent(stream, "kafka", conversation, sender, $"{stream}-{k:D6}", k);
            Ledger.Enqueue(sent);
            var value = JsonSerializer.Serialize(new
            {
                tenant_id = Tenant, conversation_id = conversation, sender_id = sender, message_id = sent.MessageId,
                content = new { type = "text", text = sent.Text },
            });
            var deadline = DateTime.UtcNow + PerMessage;
            while (!sent.Acked && DateTime.UtcNow < deadline)
            {
                sent.Attempts++;
                var began = DateTime.UtcNow;
                try
                {
                    await _producer!.ProduceAsync("chat.messages", new Message<string, string> { Key = conversation, Value = value });
                    Ack(sent, began);
                    break;
                }
                catch (KafkaException e)
                {
                    Error("kafka " + e.Error.Code);
                    sent.LastError = e.Message;
                    await Task.Delay(500);
                }
            }
            await PaceAsync(pace);
        }
    }

    private void Ack(Sent sent, DateTime began)
    {
        sent.AckAt = DateTime.UtcNow;
        sent.AckedAttemptAt = began;
        sent.Acked = true;
    }

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _producer?.Dispose();
        return ValueTask.CompletedTask;
    }
}

public static class Json
{
    /// <summary>The first number property of that name, at any depth.</summary>
    public static long? FindLong(JsonElement e, string name)
    {
        if (e.ValueKind == JsonValueKind.Object)
            foreach (var p in e.EnumerateObject())
            {
                if (p.Name == name && p.Value.ValueKind == JsonValueKind.Number) return p.Value.GetInt64();
                if (FindLong(p.Value, name) is { } found) return found;
            }
        return null;
    }

    public static string? Str(JsonElement e, params string[] names)
    {
        foreach (var n in names)
            if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String) return v.GetString();
        return null;
    }
}

/// <summary>Plain REST calls of the harness (setup and checks).</summary>
public static class Rest
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public static async Task<(int Status, string Body)> SendAsync(Uri node, string? token, HttpMethod method, string path, string? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(node, path));
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// A setup call that must answer <paramref name="expect"/>; while the cluster answers 503 or 429 (busy, a shard
    /// moving) or the connection fails, it is retried for up to two minutes. Creations are not idempotent, but a
    /// 503 here never leaves a half-made conversation that the scenario would count.
    /// </summary>
    public static async Task<JsonElement> ExpectAsync(Uri node, string token, HttpMethod method, string path, string? body, int expect)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            int status;
            string text;
            try
            {
                (status, text) = await SendAsync(node, token, method, path, body);
            }
            catch (Exception e) when ((e is HttpRequestException or TaskCanceledException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(1_000);
                continue;
            }
            if (status == expect) return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
            if (status is not (503 or 429) || DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"{method} {path}: expected {expect}, got {status}: {text}");
            await Task.Delay(1_000);
        }
    }
}
