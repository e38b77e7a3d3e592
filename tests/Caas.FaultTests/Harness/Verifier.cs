using System.Globalization;
using System.Text.Json;
using Xunit.Abstractions;

namespace Caas.FaultTests.Harness;

/// <summary>What one scenario held and lost; one row of the chaos table.</summary>
public sealed record ScenarioResult(string Scenario, double Rate, int Faults, int Acknowledged, int Lost, int Duplicated,
    TimeSpan Recovery, int Unacknowledged, IReadOnlyList<string> Problems)
{
    public static string Header =>
        "| scenario | load held (msgs/s) | faults injected | acknowledged | lost | duplicated | recovery time (s) |\n|---|---|---|---|---|---|---|";

    public string Row => string.Create(CultureInfo.InvariantCulture,
        $"| {Scenario} | {Rate:0.0} | {Faults} | {Acknowledged} | {Lost} | {Duplicated} | {Recovery.TotalSeconds:0.0} |");
}

/// <summary>
/// The checks after a scenario, against the journal (read through the audit replay, which reads the journal itself)
/// and the read model (the messages API): every acknowledged message present exactly once, no foreign message,
/// seq gap-free from 1, each sender's acknowledged messages in its send order, the acknowledged seq the stored one,
/// and the read model equal to the journal. Waits are for convergence only, with generous bounds.
/// </summary>
public static class Verifier
{
    /// <summary>The prefix of a FIFO problem of a Kafka sender (see FaultScenarioTests.KnownProductBugs).</summary>
    public const string KafkaFifo = "[kafka order] ";

    /// <summary>The prefix of a read-model-differs-from-journal problem (see FaultScenarioTests.KnownProductBugs).</summary>
    public const string ReadModelDiffers = "[read model] ";

    public static async Task<ScenarioResult> VerifyAsync(FaultCluster cluster, Load load, string scenario, IReadOnlyList<DateTime> faults,
        ITestOutputHelper output)
    {
        await cluster.AllReadyAsync(TimeSpan.FromMinutes(5));
        var problems = new List<string>();
        var sent = load.Ledger.ToList();
        var acked = sent.Where(s => s.Acked).ToList();
        var admin = load.Token("owner", "admin");
        int lost = 0, duplicated = 0;
        // One budget for the whole check: convergence takes seconds; a message that is really lost never arrives.
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        foreach (var conversation in load.Conversations)
        {
            var mine = sent.Where(s => s.Conversation == conversation).ToDictionary(s => s.MessageId, StringComparer.Ordinal);
            var expected = acked.Where(s => s.Conversation == conversation).Select(s => s.MessageId).ToHashSet(StringComparer.Ordinal);
            List<(string Id, long Seq, string Sender)> journal = [], model = [];
            // Convergence: the journal holds every acknowledged message (Kafka records are acknowledged by the broker, and
            // persisted once a node consumes them), and the read-model projection's stored offset has passed every journal
            // row there is by then, so the read model is final for this conversation (no guessing how long it lags).
            while (true)
            {
                try
                {
                    journal = await JournalAsync(cluster, admin, conversation);
                    if (expected.IsSubsetOf(journal.Select(j => j.Id).ToHashSet(StringComparer.Ordinal)) || DateTime.UtcNow > deadline)
                    {
                        var last = await Sql.ScalarAsync(cluster.Database, "SELECT coalesce(max(ordering), 0) FROM journal");
                        while (await Sql.ScalarAsync(cluster.Database, "SELECT coalesce(max(last_offset), 0) FROM rm_projection_offsets WHERE name = 'conversations'") < last
                               && DateTime.UtcNow < deadline)
                            await Task.Delay(500);
                        model = await ReadModelAsync(cluster, admin, conversation);
                        break;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException or Npgsql.NpgsqlException)
                {
                    cluster.Note($"verify {conversation}: {e.Message}");
                    if (DateTime.UtcNow > deadline) throw;
                }
                await Task.Delay(2_000);
            }

            var counts = journal.GroupBy(j => j.Id).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            foreach (var id in expected.Where(id => !counts.ContainsKey(id)))
            {
                lost++;
                problems.Add($"{conversation}: acknowledged {id} is not in the journal (last error: {mine[id].LastError}" +
                             $"{await DeadLettersOfAsync(cluster, id)})");
            }
            foreach (var (id, n) in counts.Where(kv => kv.Value > 1))
            {
                duplicated += n - 1;
                problems.Add($"{conversation}: {id} is in the journal {n} times");
            }
            foreach (var id in counts.Keys.Where(id => !mine.ContainsKey(id)))
                problems.Add($"{conversation}: {id} in the journal was never sent here");
            var seqs = journal.Select(j => j.Seq).ToList();
            if (!seqs.SequenceEqual(Enumerable.Range(1, seqs.Count).Select(i => (long)i)))
                problems.Add($"{conversation}: journal seqs are not 1..{seqs.Count} in order: {Describe(seqs)}");
            if (!Same(journal, model))
                problems.Add($"{ReadModelDiffers}{conversation}: read model ({model.Count} messages) differs from the journal ({journal.Count}): " +
                             $"{string.Join(", ", journal.Except(model).Take(5))} vs {string.Join(", ", model.Except(journal).Take(5))}");
            var stored = journal.GroupBy(j => j.Id).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
            foreach (var s in acked.Where(s => s.Conversation == conversation && s.AckSeq is not null && stored.ContainsKey(s.MessageId)))
                if (stored[s.MessageId].Seq != s.AckSeq)
                    problems.Add($"{s.MessageId}: acknowledged with seq {s.AckSeq}, stored as {stored[s.MessageId].Seq}");
            foreach (var s in mine.Values.Where(s => stored.TryGetValue(s.MessageId, out var j) && j.Sender != s.Sender))
                problems.Add($"{s.MessageId}: stored with sender {stored[s.MessageId].Sender}, sent by {s.Sender}");
            foreach (var stream in acked.Where(s => s.Conversation == conversation).GroupBy(s => s.Stream))
            {
                var order = stream.OrderBy(s => s.Index).Where(s => stored.ContainsKey(s.MessageId)).Select(s => stored[s.MessageId].Seq).ToList();
                for (var i = 1; i < order.Count; i++)
                    if (order[i] <= order[i - 1])
                    {
                        problems.Add($"{(stream.First().Channel == "kafka" ? KafkaFifo : "")}{stream.Key}: not FIFO, seqs in send order {Describe(order)}");
                        break;
                    }
            }
        }

        var recovery = TimeSpan.Zero;
        foreach (var t0 in faults)
            foreach (var stream in acked.GroupBy(s => s.Stream))
                if (stream.Where(s => s.AckedAttemptAt >= t0).OrderBy(s => s.AckAt).FirstOrDefault() is { } first && first.AckAt - t0 > recovery)
                    recovery = first.AckAt - t0;
        var result = new ScenarioResult(scenario, acked.Count / Math.Max(1, load.Duration.TotalSeconds), faults.Count, acked.Count, lost,
            duplicated, recovery, sent.Count - acked.Count, problems);
        output.WriteLine(ScenarioResult.Header);
        output.WriteLine(result.Row);
        output.WriteLine($"sent {sent.Count}, acknowledged {acked.Count}, unacknowledged {result.Unacknowledged}, rejected {sent.Count(s => s.Rejected is not null)}; " +
                         $"errors seen (then retried): {string.Join(", ", load.Errors.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value}"))}");
        foreach (var s in sent.Where(s => s.Rejected is not null).Take(10)) output.WriteLine($"rejected {s.MessageId}: {s.Rejected}");
        foreach (var p in problems.Take(50)) output.WriteLine("PROBLEM " + p);
        if (cluster.Settings.Report is { } report)
            await File.AppendAllTextAsync(report, result.Row + $" <!-- unacknowledged {result.Unacknowledged}, problems {problems.Count} -->\n");
        return result;
    }

    /// <summary>A lost message's dead letters, if the pipeline gave it up (a Kafka record is dead-lettered, not retried).</summary>
    private static async Task<string> DeadLettersOfAsync(FaultCluster cluster, string messageId)
    {
        try
        {
            var letters = await Sql.TextsAsync(cluster.Database,
                "SELECT code || ': ' || reason FROM dead_letters WHERE strpos(payload, @id) > 0", ("id", messageId));
            return letters.Count == 0 ? "; no dead letter" : "; dead-lettered: " + string.Join(" | ", letters);
        }
        catch (Npgsql.NpgsqlException e)
        {
            return "; dead letters unread: " + e.Message;
        }
    }

    private static bool Same(List<(string Id, long Seq, string Sender)> journal, List<(string Id, long Seq, string Sender)> model) =>
        journal.Count == model.Count && journal.OrderBy(j => j.Seq).SequenceEqual(model.OrderBy(m => m.Seq));

    private static string Describe(List<long> seqs) =>
        seqs.Count <= 20 ? string.Join(",", seqs) : string.Join(",", seqs.Take(10)) + ",…," + string.Join(",", seqs.TakeLast(5));

    /// <summary>The conversation's MessagePosted events, from the journal (audit replay), in journal order.</summary>
    public static async Task<List<(string Id, long Seq, string Sender)>> JournalAsync(FaultCluster cluster, string admin, string conversation)
    {
        foreach (var node in ReadyFirst(cluster))
        {
            var (status, body) = await Rest.SendAsync(node, admin, HttpMethod.Get, $"/v1/admin/audit/conversations/{conversation}/events");
            if (status != 200) continue;
            var list = new List<(string, long, string)>();
            foreach (var line in body.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var e = JsonDocument.Parse(line).RootElement;
                if (!e.GetProperty("type").GetString()!.StartsWith("conv.message-posted", StringComparison.Ordinal)) continue;
                var payload = e.GetProperty("payload");
                list.Add((Json.Str(payload, "message_id", "messageId", "MessageId")!,
                    payload.TryGetProperty("seq", out var seq) ? seq.GetInt64() : payload.GetProperty("Seq").GetInt64(),
                    Json.Str(e, "actor") ?? ""));
            }
            return list;
        }
        throw new InvalidOperationException("no node answered the audit replay");
    }

    /// <summary>The conversation's messages in the read model, oldest first (after_seq catch-up paging).</summary>
    public static async Task<List<(string Id, long Seq, string Sender)>> ReadModelAsync(FaultCluster cluster, string admin, string conversation)
    {
        foreach (var node in ReadyFirst(cluster))
        {
            var items = new List<(string, long, string)>();
            var path = $"/v1/messages/conversations/{conversation}?after_seq=0&limit=200";
            var ok = true;
            for (var page = 0; page < 10_000; page++)
            {
                var (status, body) = await Rest.SendAsync(node, admin, HttpMethod.Get, path);
                if (status != 200)
                {
                    ok = false;
                    break;
                }
                var json = JsonDocument.Parse(body).RootElement;
                foreach (var m in json.GetProperty("items").EnumerateArray())
                    items.Add((m.GetProperty("message_id").GetString()!, m.GetProperty("seq").GetInt64(), m.GetProperty("sender_id").GetString()!));
                if (json.GetProperty("next_cursor").GetString() is not { } cursor) break;
                path = $"/v1/messages/conversations/{conversation}?limit=200&cursor={Uri.EscapeDataString(cursor)}";
            }
            if (ok) return items;
        }
        throw new InvalidOperationException("no node answered the messages read");
    }

    private static IEnumerable<Uri> ReadyFirst(FaultCluster cluster) => cluster.Nodes.Select(n => n.Url);
}

public static class Sql
{
    /// <summary>The first column of every row, as text.</summary>
    public static async Task<List<string>> TextsAsync(string connectionString, string sql, params (string Name, object Value)[] parameters)
    {
        await using var c = new Npgsql.NpgsqlConnection(connectionString);
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        var texts = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) texts.Add(reader.GetString(0));
        return texts;
    }

    public static async Task<long> ScalarAsync(string connectionString, string sql)
    {
        await using var c = new Npgsql.NpgsqlConnection(connectionString);
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
