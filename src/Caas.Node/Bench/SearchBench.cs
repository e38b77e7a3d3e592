using System.CommandLine;
using System.Diagnostics;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
using Caas.Streams.Search;

namespace Caas.Node.Bench;

/// <summary>
/// <c>caas bench-search</c>: a chat corpus generated from a fixed seed (common words on a Zipf curve, names, typos),
/// with a query set whose relevant messages are known by construction: each query's two rare words are planted
/// together in its relevant messages in the searching user's conversations, and alone (or together, in conversations the
/// user is not in) in distractors. The corpus is indexed through the search projection's own write path (batches of
/// journal envelopes), then every query runs through the same search as <c>GET /v1/search/messages</c>, with the
/// membership filter (the user is in 200 conversations). The last line is
/// <c>ndcg_at_10=N recall_at_50=N p50_ms=N p99_ms=N index_msgs_per_s=N</c>.
/// </summary>
public static class SearchBench
{
    private const string Tenant = "bench-search", Searcher = "searcher";

    /// <summary>The live-indexing lag run: this many batches of <see cref="LagBatchSize"/>, one every 50 ms (10,000 msgs/s for 10 s).</summary>
    private const int LagBatches = 200, LagBatchSize = 500;

    public static Command Command()
    {
        var messages = new Option<int>("--messages") { Description = "Messages in the corpus (1000000 for the full-size run).", DefaultValueFactory = _ => 100_000 };
        var conversations = new Option<int>("--conversations") { Description = "Conversations (10000 for the full-size run).", DefaultValueFactory = _ => 1_000 };
        var queries = new Option<int>("--queries") { Description = "Queries (each with its relevant messages).", DefaultValueFactory = _ => 120 };
        var seed = new Option<int>("--seed") { Description = "The generator's seed.", DefaultValueFactory = _ => 15 };
        var store = new Option<string>("--store") { Description = "sqlite or postgres (CAAS_POSTGRES or --postgres).", DefaultValueFactory = _ => "sqlite" };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Npgsql connection string of a superuser for --store postgres: the bench creates a scratch database there and drops it after.",
        };
        var command = new Command("bench-search",
            "Measure search: nDCG@10 and recall@50 on a generated corpus with known relevant messages, query latency with the membership filter, indexing rate.")
            { messages, conversations, queries, seed, store, postgres };
        messages.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1_000 or > 10_000_000) r.AddError("--messages is 1000 to 10000000."); });
        conversations.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 200 or > 1_000_000) r.AddError("--conversations is 200 to 1000000."); });
        queries.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 10_000) r.AddError("--queries is 1 to 10000."); });
        var keep = new Option<bool>("--keep") { Description = "Keep the scratch database (or SQLite directory) after the run and print where, to profile its queries." };
        command.Options.Add(keep);
        store.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("sqlite" or "postgres")) r.AddError("--store is sqlite or postgres."); });
        command.SetAction(async (parse, ct) =>
        {
            var kind = parse.GetValue(store)!;
            var pg = parse.GetValue(postgres) ?? (Environment.GetEnvironmentVariable("CAAS_POSTGRES") is { Length: > 0 } e ? e : null);
            if (kind == "postgres" && pg is null)
            {
                Console.Error.WriteLine("--store postgres needs --postgres or CAAS_POSTGRES.");
                return 2;
            }
            var n = parse.GetValue(messages);
            var q = parse.GetValue(queries);
            if (q * 60 > n)
            {
                Console.Error.WriteLine("--messages must be at least 60 per query (the planted messages take up to 60 each).");
                return 2;
            }
            return await RunAsync(kind, pg, n, parse.GetValue(conversations), q, parse.GetValue(seed), ct, parse.GetValue(keep));
        });
        return command;
    }

    public static async Task<int> RunAsync(string kind, string? postgres, int messageCount, int conversationCount, int queryCount, int seed,
        CancellationToken ct, bool keep = false)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "caas-bench-search-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDir);
        string? database = kind == "postgres" ? await ReplayBench.CreateDatabaseAsync(postgres!, ct) : null;
        var storage = database is null ? StorageOptions.Sqlite(dataDir) : StorageOptions.Postgres(database);
        try
        {
            await using var store = new ReadModelStore(storage);
            await store.EnsureSchemaAsync(ct);
            var index = new SearchIndex(store);
            await index.EnsureSchemaAsync(ct);
            var corpus = Corpus.Generate(messageCount, conversationCount, queryCount, seed);
            Console.WriteLine($"corpus: {messageCount} messages in {conversationCount} conversations, {corpus.Queries.Count} queries, " +
                              $"{corpus.Queries.Sum(x => x.Relevant.Count)} relevant messages, {Corpus.SearcherConversations} conversations of the searching user, seed {seed}, {kind}");
            await WriteMembershipsAsync(store, corpus, ct);

            // Indexing: the projection's write path, batches of 1,000 journal envelopes with the offset stored in each.
            var clock = Stopwatch.StartNew();
            const int batchSize = 1000;
            var batch = new List<EventEnvelope>(batchSize);
            var start = DateTimeOffset.UtcNow.AddDays(-30);
            for (var i = 0; i < corpus.Messages.Count; i++)
            {
                var m = corpus.Messages[i];
                var posted = new MessagePosted(new Caas.Actors.Common.EventMeta(Tenant, m.Sender, start.AddSeconds(i * 2.0)), m.Seq, "m-" + i,
                    new MessageContent("text", m.Text));
                batch.Add(new EventEnvelope(Offset.Sequence(i + 1), "conversation|" + Ids.EntityId(Tenant, m.Conversation), m.Seq, posted, 0, []));
                if (batch.Count == batchSize || i == corpus.Messages.Count - 1)
                {
                    await index.WriteAsync(batch, "search-bench", SearchIndex.Live, ct);
                    batch.Clear();
                }
                if ((i + 1) % 100_000 == 0) Console.WriteLine($"indexed {i + 1} ({(i + 1) / clock.Elapsed.TotalSeconds:F0}/s)");
            }
            var indexRate = corpus.Messages.Count / clock.Elapsed.TotalSeconds;
            if (store.IsPostgres)
            {
                await using var c = await store.OpenAsync(ct);
                await ReadModelStore.ExecuteAsync(c, "ANALYZE", ct);
            }

            // Queries: each once to warm, then timed; quality from the timed run.
            var search = new SearchQueries(index);
            var timings = new List<double>();
            double ndcg = 0, recall = 0;
            foreach (var query in corpus.Queries)
                await search.MessagesAsync(Request(query.Text, 10), ct);
            foreach (var query in corpus.Queries)
            {
                var t = Stopwatch.StartNew();
                var hits = await search.MessagesAsync(Request(query.Text, 50), ct);
                timings.Add(t.Elapsed.TotalMilliseconds);
                var ids = hits.Items.Select(h => h.MessageId).ToList();
                ndcg += Ndcg(ids, query.Relevant, 10);
                recall += (double)ids.Take(50).Count(query.Relevant.Contains) / query.Relevant.Count;
            }
            var suggest = new List<double>();
            // Warmed up like the message queries above: each prefix once, untimed.
            foreach (var name in Corpus.Names.Take(50)) await search.SuggestionsAsync(Tenant, Searcher, name[..3], 8, ct);
            foreach (var name in Corpus.Names.Take(50))
            {
                var t = Stopwatch.StartNew();
                await search.SuggestionsAsync(Tenant, Searcher, name[..3], 8, ct);
                suggest.Add(t.Elapsed.TotalMilliseconds);
            }
            // Each of a suggestion's three lookups on its own (they run at once in a suggestion), to see which one sets its time.
            var parts = new Dictionary<string, List<double>> { ["people"] = [], ["titles"] = [], ["terms"] = [] };
            foreach (var name in Corpus.Names.Take(50))
            {
                var t = Stopwatch.StartNew();
                await search.UsersAsync(Tenant, name[..3], 8, ct);
                parts["people"].Add(t.Elapsed.TotalMilliseconds);
                t.Restart();
                await search.ConversationsAsync(Tenant, Searcher, name[..3], 8, ct);
                parts["titles"].Add(t.Elapsed.TotalMilliseconds);
                t.Restart();
                await TermSuggestions.FindAsync(index, Tenant, Searcher, name[..3], 8, ct);
                parts["terms"].Add(t.Elapsed.TotalMilliseconds);
            }
            // Live indexing at 10,000 msgs/s of ingest: every 50 ms (the projection's batch window) a batch of 500 new
            // messages is due; each one's lag is from when it was due to when its transaction committed (a writer that
            // falls behind makes later batches later). The projection adds its journal poll (refresh-interval, 100 ms)
            // and at most one batch window in front of this.
            var lags = new List<double>();
            var paced = Stopwatch.StartNew();
            var nextOffset = corpus.Messages.Count + 1L;
            for (var b = 0; b < LagBatches; b++)
            {
                var due = TimeSpan.FromMilliseconds(b * 50.0);
                if (paced.Elapsed < due) await Task.Delay(due - paced.Elapsed, ct);
                var live = new List<EventEnvelope>(LagBatchSize);
                for (var k = 0; k < LagBatchSize; k++)
                {
                    var n = b * LagBatchSize + k;
                    var source = corpus.Messages[n % corpus.Messages.Count];
                    var posted = new MessagePosted(new Caas.Actors.Common.EventMeta(Tenant, source.Sender, DateTimeOffset.UtcNow), n / 100 + 1, "live-" + n,
                        new MessageContent("text", source.Text));
                    live.Add(new EventEnvelope(Offset.Sequence(nextOffset++), "conversation|" + Ids.EntityId(Tenant, "live-" + n % 100), n / 100 + 1, posted, 0, []));
                }
                await index.WriteAsync(live, "search-bench", SearchIndex.Live, ct);
                lags.Add((paced.Elapsed - due).TotalMilliseconds);
            }
            lags.Sort();
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"live_index_lag_p50_ms={Percentile(lags, 0.5):F1} live_index_lag_p99_ms={Percentile(lags, 0.99):F1} " +
                $"(10,000 msgs/s for {LagBatches * 50 / 1000.0:F0} s: {LagBatchSize} every 50 ms; add the journal poll, 100 ms, and one batch window, 50 ms)"));
            timings.Sort();
            suggest.Sort();
            foreach (var part in parts.Values) part.Sort();
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"suggestion_parts_p99_ms {string.Join(' ', parts.Select(p => $"{p.Key}={Percentile(p.Value, 0.99):F1}"))}"));
            Console.WriteLine($"suggestions_p99_ms={Percentile(suggest, 0.99):F1}");
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"ndcg_at_10={ndcg / corpus.Queries.Count:F3} recall_at_50={recall / corpus.Queries.Count:F3} p50_ms={Percentile(timings, 0.5):F1} " +
                $"p99_ms={Percentile(timings, 0.99):F1} index_msgs_per_s={indexRate:F0}"));
            return 0;
        }
        finally
        {
            if (keep) Console.WriteLine(database is not null ? $"kept: database {database}" : $"kept: {dataDir}");
            else if (database is not null) await ReplayBench.DropDatabaseAsync(postgres!, database);
            try
            {
                if (!keep) Directory.Delete(dataDir, true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static MessageSearch Request(string text, int limit) =>
        new(Tenant, Searcher, SearchQuery.Parse(text), null, null, null, null, null, null, null, null, false, 0, limit);

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    /// <summary>nDCG at k with binary relevance.</summary>
    public static double Ndcg(IReadOnlyList<string> ranked, IReadOnlySet<string> relevant, int k)
    {
        double dcg = 0, ideal = 0;
        for (var i = 0; i < Math.Min(k, ranked.Count); i++)
            if (relevant.Contains(ranked[i])) dcg += 1 / Math.Log2(i + 2);
        for (var i = 0; i < Math.Min(k, relevant.Count); i++) ideal += 1 / Math.Log2(i + 2);
        return ideal == 0 ? 0 : dcg / ideal;
    }

    private static async Task WriteMembershipsAsync(ReadModelStore store, Corpus corpus, CancellationToken ct)
    {
        await using var c = await store.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        for (var i = 0; i < corpus.ConversationCount; i++)
        {
            var id = Corpus.ConversationId(i);
            await using (var cmd = Sql(c, tx,
                             "INSERT INTO rm_conversations (tenant_id, conversation_id, type, title, metadata, created_at, created_by, deleted, last_seq) " +
                             "VALUES (@t, @c, 'group', @title, '{}', 0, 'u0', 0, 0)", ("t", Tenant), ("c", id), ("title", "Room " + i)))
                await cmd.ExecuteNonQueryAsync(ct);
            foreach (var member in corpus.Members[i])
                await using (var cmd = Sql(c, tx,
                                 "INSERT INTO rm_memberships (tenant_id, conversation_id, user_id, role, joined_at) VALUES (@t, @c, @u, 'member', 0)",
                                 ("t", Tenant), ("c", id), ("u", member)))
                    await cmd.ExecuteNonQueryAsync(ct);
        }
        // The tenant's people, as the read model writer keeps them beside the memberships.
        await using (var cmd = Sql(c, tx, "INSERT INTO rm_people (tenant_id, user_id) SELECT DISTINCT tenant_id, user_id FROM rm_memberships WHERE true ON CONFLICT DO NOTHING"))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    private static System.Data.Common.DbCommand Sql(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, string sql,
        params (string Name, object Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    public sealed record BenchMessage(string Conversation, long Seq, string Sender, string Text);

    public sealed record BenchQuery(string Text, IReadOnlySet<string> Relevant);

    /// <summary>The generated corpus: messages in journal order, each conversation's members, the queries and their relevant message ids.</summary>
    public sealed class Corpus
    {
        public const int SearcherConversations = 200;
        public required List<BenchMessage> Messages { get; init; }
        public required List<string[]> Members { get; init; }
        public required List<BenchQuery> Queries { get; init; }
        public required int ConversationCount { get; init; }

        public static string ConversationId(int i) => "c" + i.ToString("D6", System.Globalization.CultureInfo.InvariantCulture);

        public static readonly string[] Names =
        [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "nina", "oscar", "peggy", "quentin",
            "rupert", "sybil", "trent", "ursula", "victor", "walter", "xena", "yusuf", "zoe", "amara", "bruno", "chen", "dmitri", "elena", "farah",
            "gustavo", "hana", "igor", "jamal", "kenji", "lucia", "mateo", "nadia", "omar", "priya", "ravi", "sofia", "tomas", "uma", "vera",
            "wei", "ximena", "yara", "zane", "arjun",
        ];

        private static readonly string[] Common =
        [
            "the", "to", "and", "a", "i", "you", "it", "is", "for", "on", "that", "we", "in", "this", "can", "be", "have", "will", "just", "so",
            "with", "do", "meeting", "today", "tomorrow", "thanks", "ok", "yes", "no", "please", "send", "call", "later", "now", "team", "project",
            "update", "check", "need", "know", "think", "good", "great", "time", "week", "friday", "monday", "lunch", "coffee", "review", "doc",
            "file", "link", "deploy", "release", "bug", "fix", "test", "build", "server", "client", "design", "budget", "report", "plan",
            "customer", "order", "invoice", "payment", "shipping", "ticket", "issue", "question", "answer", "idea", "draft", "slides", "notes",
            "agenda", "schedule", "morning", "afternoon", "evening", "weekend", "holiday", "office", "remote", "home", "train", "flight",
            "hotel", "dinner", "party", "birthday", "happy", "sorry", "late", "soon", "done", "started", "working", "waiting", "looks",
            "sounds", "sure", "maybe", "probably", "definitely", "quick", "sync", "standup", "retro", "sprint", "backlog", "merge", "branch",
        ];

        public static Corpus Generate(int messageCount, int conversationCount, int queryCount, int seed)
        {
            var random = new Random(seed);
            var users = Enumerable.Range(0, 1000).Select(i => i < Names.Length ? Names[i] : "user" + i).ToArray();
            var members = new List<string[]>(conversationCount);
            var searcherIn = new HashSet<int>(Enumerable.Range(0, conversationCount).OrderBy(_ => random.Next()).Take(SearcherConversations));
            for (var i = 0; i < conversationCount; i++)
            {
                var set = new HashSet<string>(Enumerable.Range(0, 2 + random.Next(6)).Select(_ => users[random.Next(users.Length)]));
                if (searcherIn.Contains(i)) set.Add(Searcher);
                members.Add([.. set]);
            }
            var mine = searcherIn.Order().ToArray();
            var others = Enumerable.Range(0, conversationCount).Where(i => !searcherIn.Contains(i)).ToArray();

            // Zipf weights over the common words, then the generated vocabulary (a long tail of rarer words).
            var tail = Enumerable.Range(0, 5000).Select(i => Word(random, 2 + random.Next(3))).Distinct().ToArray();
            var vocabulary = Common.Concat(tail).ToArray();
            var cumulative = new double[vocabulary.Length];
            double sum = 0;
            for (var i = 0; i < vocabulary.Length; i++) cumulative[i] = sum += 1.0 / (i + 1);
            string Sentence()
            {
                var words = new List<string>();
                var length = 3 + random.Next(14);
                for (var w = 0; w < length; w++)
                {
                    var word = vocabulary[Math.Min(vocabulary.Length - 1, Array.BinarySearch(cumulative, random.NextDouble() * sum) is var at && at < 0 ? ~at : at)];
                    if (random.NextDouble() < 0.03) word = Typo(random, word);
                    if (random.NextDouble() < 0.04) word = Names[random.Next(Names.Length)];
                    words.Add(word);
                }
                return string.Join(' ', words);
            }

            var texts = new string[messageCount];
            var conversationOf = new int[messageCount];
            for (var i = 0; i < messageCount; i++)
            {
                conversationOf[i] = random.Next(conversationCount);
                texts[i] = Sentence();
            }

            // Each query's two rare words ("q12a"-like pseudo-words no generated sentence holds), planted by construction.
            var used = new HashSet<int>();
            int Slot()
            {
                int i;
                do i = random.Next(messageCount);
                while (!used.Add(i));
                return i;
            }
            string Insert(string text, params string[] words)
            {
                var parts = text.Split(' ').ToList();
                foreach (var w in words) parts.Insert(random.Next(parts.Count + 1), w);
                return string.Join(' ', parts);
            }
            var queries = new List<(string Text, List<int> Relevant)>();
            for (var q = 0; q < queryCount; q++)
            {
                var a = "zq" + Word(random, 2) + q.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var b = "xv" + Word(random, 2) + q.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var phrase = q % 4 == 3;
                var relevant = new List<int>();
                for (var r = 0; r < 3 + random.Next(10); r++)
                {
                    var i = Slot();
                    conversationOf[i] = mine[random.Next(mine.Length)];
                    texts[i] = phrase ? Insert(texts[i], a + " " + b) : Insert(texts[i], a, b);
                    relevant.Add(i);
                }
                // Distractors: one word only; both words in conversations the searcher is not in; for phrases, both words apart.
                for (var d = 0; d < 10; d++)
                {
                    var i = Slot();
                    conversationOf[i] = mine[random.Next(mine.Length)];
                    texts[i] = Insert(texts[i], d % 2 == 0 ? a : b);
                    var j = Slot();
                    conversationOf[j] = others[random.Next(others.Length)];
                    texts[j] = Insert(texts[j], a, b);
                    if (phrase && d < 5)
                    {
                        var k = Slot();
                        conversationOf[k] = mine[random.Next(mine.Length)];
                        texts[k] = b + " " + texts[k] + " " + a;
                    }
                }
                queries.Add((phrase ? $"\"{a} {b}\"" : $"{a} {b}", relevant));
            }

            var seqs = new long[conversationCount];
            var messages = new List<BenchMessage>(messageCount);
            for (var i = 0; i < messageCount; i++)
            {
                var c = conversationOf[i];
                var sender = members[c][random.Next(members[c].Length)];
                messages.Add(new BenchMessage(ConversationId(c), ++seqs[c], sender, texts[i]));
            }
            return new Corpus
            {
                Messages = messages,
                Members = members,
                ConversationCount = conversationCount,
                Queries = queries.Select(q => new BenchQuery(q.Text, q.Relevant.Select(i => "m-" + i).ToHashSet())).ToList(),
            };
        }

        private static readonly string[] Syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "de", "ba", "gu", "fe", "ho", "ji", "wa", "yo"];

        private static string Word(Random random, int syllables) =>
            string.Concat(Enumerable.Range(0, syllables).Select(_ => Syllables[random.Next(Syllables.Length)]));

        private static string Typo(Random random, string word)
        {
            if (word.Length < 3) return word;
            var i = random.Next(word.Length - 1);
            var chars = word.ToCharArray();
            (chars[i], chars[i + 1]) = (chars[i + 1], chars[i]);
            return new string(chars);
        }
    }
}
