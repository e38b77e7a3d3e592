using Confluent.Kafka;

namespace Caas.Streams.Kafka;

/// <summary>Which broker features the client may use.</summary>
public enum KafkaProfile
{
    /// <summary>A current broker: API version negotiation, idempotent producer, headers, AdminClient topic creation.</summary>
    Modern,

    /// <summary>
    /// A Kafka 0.9 broker (the test broker): no ApiVersion request, no idempotence, no headers or timestamps, no
    /// CreateTopics. Nothing CAAS guarantees rests on those: zero loss and no duplicates come from
    /// commit-after-persist and the entity's idempotency.
    /// </summary>
    Compat09,
}

/// <summary>
/// The Kafka client settings, from the environment: <c>CAAS_KAFKA_BOOTSTRAP</c> (Kafka is off without it),
/// <c>CAAS_KAFKA_GROUP</c>, <c>CAAS_KAFKA_TOPIC_MESSAGES</c> / <c>_EVENTS</c> / <c>_DLQ</c>,
/// <c>CAAS_KAFKA_ALLOWED_TENANTS</c> (<c>topic=t1,t2;topic2=t3</c>: the tenants a topic may carry; a topic not
/// named admits every tenant), <c>CAAS_KAFKA_PROFILE</c> (<c>modern</c> or <c>0.9</c>), and every
/// <c>CAAS_KAFKA_CONFIG_X_Y=v</c> passed to librdkafka as <c>x.y=v</c> (security.protocol, sasl.*, ssl.*).
/// </summary>
public sealed record KafkaSettings
{
    public required string Bootstrap { get; init; }
    public string GroupId { get; init; } = "caas-ingest";
    public string MessagesTopic { get; init; } = "chat.messages";
    public string EventsTopic { get; init; } = "chat.events";
    public string DeadLetterTopic { get; init; } = "chat.dlq";
    /// <summary>File uploads, deletions and erasures (<c>CAAS_KAFKA_TOPIC_MEDIA_EVENTS</c>; README: Media).</summary>
    public string MediaEventsTopic { get; init; } = "media.events";
    public KafkaProfile Profile { get; init; } = KafkaProfile.Modern;
    public IReadOnlyDictionary<string, IReadOnlySet<string>> AllowedTenants { get; init; } = new Dictionary<string, IReadOnlySet<string>>();
    /// <summary>librdkafka properties passed through as they are (security settings, tuning).</summary>
    public IReadOnlyDictionary<string, string> Passthrough { get; init; } = new Dictionary<string, string>();
    /// <summary>Partitions and replication of topics created at start-up.</summary>
    public int TopicPartitions { get; init; } = 8;
    public short TopicReplication { get; init; } = 1;
    public int SessionTimeoutMs { get; init; } = 10_000;

    /// <summary>Records consumed but not yet persisted, per partition, before that partition is paused.</summary>
    public int MaxPendingPerPartition { get; init; } = 4_000;
    /// <summary>Records handed from the poll thread to the stream at once; when it is full the poll thread waits for room.</summary>
    public int BufferSize { get; init; } = 2_000;
    /// <summary>How long the hand-off buffer may stay full before every partition is paused (a stalled stream).</summary>
    public TimeSpan StallPauseAfter { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Records submitted to the pipeline at once (the head of each conversation's lane).</summary>
    public int Parallelism { get; init; } = 1_000;
    /// <summary>
    /// Records the ingest holds at once: submitted, or waiting behind an earlier record of their conversation. Records
    /// of one conversation come in runs (a partition's fetch at a time), so this is larger than
    /// <see cref="Parallelism"/>: a waiting record holds no submission slot, and the slots go to the conversations
    /// that can move. Each partition is paused anyway at <see cref="MaxPendingPerPartition"/> open records. The held
    /// records' values are in memory: lower it (<c>CAAS_KAFKA_MAX_HELD</c>) for records near the broker's size limit.
    /// </summary>
    public int MaxHeld { get; init; } = 16_000;
    /// <summary>
    /// Records of one conversation on their way through the pipeline at once (<c>CAAS_KAFKA_PER_CONVERSATION</c>). Each
    /// after the first goes with its predecessor's message id and is stored only after it (refused otherwise, then sent
    /// again once that one has its outcome), so order holds under retries; 1 sends a conversation's records one at a time.
    /// </summary>
    public int PerConversationInFlight { get; init; } = 8;
    public TimeSpan CommitInterval { get; init; } = TimeSpan.FromMilliseconds(200);
    /// <summary>How long a revoked partition's records already in the pipeline are waited for before its final commit.</summary>
    public TimeSpan RevokeDrainTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A failed ingest stream is started again after this, doubling up to <see cref="RestartMaxBackoff"/>.</summary>
    public TimeSpan RestartMinBackoff { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan RestartMaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The chat.events producer's breaker: failures before it opens, a call's limit, time until it tries again.</summary>
    public int BreakerMaxFailures { get; init; } = 3;
    public TimeSpan BreakerCallTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan BreakerReset { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The settings that decide which records are admitted, on a node that does not consume Kafka itself (dead-letter
    /// replay still applies <c>CAAS_KAFKA_ALLOWED_TENANTS</c>).
    /// </summary>
    public static KafkaSettings AdmissionFromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        return FromEnvironment(env) ?? new KafkaSettings
        {
            Bootstrap = string.Empty,
            MessagesTopic = env("CAAS_KAFKA_TOPIC_MESSAGES") is { Length: > 0 } topic ? topic : "chat.messages",
            AllowedTenants = ParseAllowedTenants(env("CAAS_KAFKA_ALLOWED_TENANTS")),
        };
    }

    public bool TenantAllowed(string topic, string tenant) =>
        !AllowedTenants.TryGetValue(topic, out var allowed) || allowed.Contains(tenant);

    /// <param name="env">reads a variable (default: the process environment)</param>
    /// <param name="names">the variables there are, for the <c>CAAS_KAFKA_CONFIG_*</c> passthrough (default: the process environment's)</param>
    public static KafkaSettings? FromEnvironment(Func<string, string?>? env = null, IEnumerable<string>? names = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        names ??= Environment.GetEnvironmentVariables().Keys.Cast<string>().ToList();
        if (env("CAAS_KAFKA_BOOTSTRAP") is not { Length: > 0 } bootstrap) return null;
        var d = new KafkaSettings { Bootstrap = bootstrap };
        var passthrough = new Dictionary<string, string>();
        foreach (var name in names)
        {
            if (!name.StartsWith("CAAS_KAFKA_CONFIG_", StringComparison.Ordinal)) continue;
            passthrough[name["CAAS_KAFKA_CONFIG_".Length..].ToLowerInvariant().Replace('_', '.')] = env(name) ?? "";
        }
        return (d with
        {
            GroupId = env("CAAS_KAFKA_GROUP") is { Length: > 0 } g ? g : d.GroupId,
            MessagesTopic = env("CAAS_KAFKA_TOPIC_MESSAGES") is { Length: > 0 } m ? m : d.MessagesTopic,
            EventsTopic = env("CAAS_KAFKA_TOPIC_EVENTS") is { Length: > 0 } ev ? ev : d.EventsTopic,
            DeadLetterTopic = env("CAAS_KAFKA_TOPIC_DLQ") is { Length: > 0 } q ? q : d.DeadLetterTopic,
            MediaEventsTopic = env("CAAS_KAFKA_TOPIC_MEDIA_EVENTS") is { Length: > 0 } me ? me : d.MediaEventsTopic,
            Profile = ParseProfile(env("CAAS_KAFKA_PROFILE")),
            AllowedTenants = ParseAllowedTenants(env("CAAS_KAFKA_ALLOWED_TENANTS")),
            Passthrough = passthrough,
        }).WithTuning(env);
    }

    /// <summary>
    /// These settings with the ingest's limits a node takes from its environment: <c>CAAS_KAFKA_MAX_HELD</c>,
    /// <c>CAAS_KAFKA_PER_CONVERSATION</c>, <c>CAAS_KAFKA_PARALLELISM</c>, <c>CAAS_KAFKA_MAX_PENDING_PER_PARTITION</c>
    /// (each a positive number; unset keeps the value). The pipeline bench applies them to its own settings too.
    /// </summary>
    public KafkaSettings WithTuning(Func<string, string?> env) => this with
    {
        MaxHeld = Positive(env, "CAAS_KAFKA_MAX_HELD") ?? MaxHeld,
        PerConversationInFlight = Positive(env, "CAAS_KAFKA_PER_CONVERSATION") ?? PerConversationInFlight,
        Parallelism = Positive(env, "CAAS_KAFKA_PARALLELISM") ?? Parallelism,
        MaxPendingPerPartition = Positive(env, "CAAS_KAFKA_MAX_PENDING_PER_PARTITION") ?? MaxPendingPerPartition,
    };

    /// <summary>The positive number in <paramref name="name"/>, null when it is not set.</summary>
    public static int? Positive(Func<string, string?> env, string name) => env(name) is { Length: > 0 } value
        ? int.TryParse(value, out var n) && n > 0 ? n : throw new ArgumentException($"{name} must be a positive number, not '{value}'")
        : null;

    public static KafkaProfile ParseProfile(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "modern" => KafkaProfile.Modern,
        "0.9" or "0.9.0" or "0.9.0.1" or "compat09" => KafkaProfile.Compat09,
        _ => throw new ArgumentException($"CAAS_KAFKA_PROFILE must be 'modern' or '0.9', not '{value}'"),
    };

    /// <summary><c>chat.messages=t-a,t-b;other=t-c</c> → each topic's allowed tenants.</summary>
    public static IReadOnlyDictionary<string, IReadOnlySet<string>> ParseAllowedTenants(string? value)
    {
        var map = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(value)) return map;
        foreach (var entry in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = entry.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"CAAS_KAFKA_ALLOWED_TENANTS: '{entry}' is not topic=tenant,tenant");
            map[entry[..eq].Trim()] = entry[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .ToHashSet(StringComparer.Ordinal);
        }
        return map;
    }

    public ConsumerConfig ConsumerConfig(string? clientId = null)
    {
        var c = new ConsumerConfig(Common())
        {
            GroupId = GroupId,
            // The source stores an offset only below which everything is complete; librdkafka commits what is stored.
            EnableAutoCommit = true,
            AutoCommitIntervalMs = (int)CommitInterval.TotalMilliseconds,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = Profile == KafkaProfile.Compat09 ? Math.Min(SessionTimeoutMs, 30_000) : SessionTimeoutMs,
            HeartbeatIntervalMs = Math.Max(500, SessionTimeoutMs / 5),
            EnablePartitionEof = false,
        };
        if (clientId is not null) c.ClientId = clientId;
        return c;
    }

    public ProducerConfig ProducerConfig()
    {
        var c = new ProducerConfig(Common())
        {
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 30_000,
            EnableIdempotence = Profile == KafkaProfile.Modern,
        };
        // Without idempotence a retry may reorder a partition; one request in flight keeps the order.
        if (Profile == KafkaProfile.Compat09) c.MaxInFlight = 1;
        return c;
    }

    public AdminClientConfig AdminConfig() => new(Common());

    /// <summary>Whether records may carry headers (0.9 has none; the value always carries what a consumer needs).</summary>
    public bool Headers => Profile == KafkaProfile.Modern;

    private Dictionary<string, string> Common()
    {
        var c = new Dictionary<string, string> { ["bootstrap.servers"] = Bootstrap };
        if (Profile == KafkaProfile.Compat09)
        {
            c["api.version.request"] = "false";
            c["broker.version.fallback"] = "0.9.0.1";
            // librdkafka warns that these two are deprecated; the 0.9 broker needs them.
            c["log_level"] = "3";
        }
        foreach (var (k, v) in Passthrough) c[k] = v;
        return c;
    }
}
