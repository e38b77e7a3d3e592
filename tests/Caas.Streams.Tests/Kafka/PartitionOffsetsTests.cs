using Caas.Streams.Kafka;
using Xunit;

namespace Caas.Streams.Tests.Kafka;

public sealed class PartitionOffsetsTests
{
    [Fact]
    public void The_commit_point_stops_at_the_lowest_open_record_and_moves_past_it_when_it_completes()
    {
        var p = new PartitionOffsets();
        Assert.Null(p.CommitPoint);
        foreach (var o in new long[] { 10, 11, 12, 14 }) p.Received(o); // 13 was compacted away
        foreach (var _ in Enumerable.Range(0, 4)) Assert.True(p.TryEmit());
        p.Done(11);
        p.Done(14);
        Assert.Equal(10, p.CommitPoint);
        p.Done(10);
        Assert.Equal(12, p.CommitPoint);
        p.Done(12);
        Assert.Equal(15, p.CommitPoint);
        Assert.Equal(0, p.InFlight);
        Assert.Equal(0, p.Open);
    }

    [Fact]
    public void A_stored_point_is_not_stored_again_until_it_moves()
    {
        var p = new PartitionOffsets();
        p.Received(0);
        p.TryEmit();
        p.Done(0);
        Assert.Equal(1, p.Uncommitted());
        p.MarkCommitted(1);
        Assert.Null(p.Uncommitted());
        p.Received(1);
        Assert.Null(p.Uncommitted());
    }

    [Fact]
    public void A_revoked_partition_emits_nothing_more_and_a_late_completion_changes_nothing_after_it_is_dropped()
    {
        var p = new PartitionOffsets();
        p.Received(5);
        p.Received(6);
        Assert.True(p.TryEmit());
        p.Revoke();
        Assert.False(p.TryEmit());
        Assert.Equal(1, p.InFlight);
        p.Done(5);
        Assert.Equal(0, p.InFlight);
        // 6 was never handed on: the commit stops before it, so the next owner reads it.
        Assert.Equal(6, p.CommitPoint);
        p.Done(99);
        Assert.Equal(6, p.CommitPoint);
    }
}

public sealed class ChatMessageRecordTests
{
    private static readonly KafkaSettings Settings = new()
    {
        Bootstrap = "unused:9092",
        AllowedTenants = KafkaSettings.ParseAllowedTenants("chat.messages=t-a,t-b"),
    };

    private static ChatMessageRecord Read(string? key, string value, string topic = "chat.messages") =>
        ChatMessageRecord.Read(topic, key is null ? null : System.Text.Encoding.UTF8.GetBytes(key), System.Text.Encoding.UTF8.GetBytes(value), Settings);

    [Fact]
    public void A_complete_record_is_a_kafka_message()
    {
        var r = Read("c1", """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":{"type":"text","text":"hi"},"created_at":"2026-01-01T00:00:00Z"}""");
        Assert.Equal(new Caas.Streams.Pipeline.IngestMessage("t-a", "c1", "u1", "m1", new Caas.Actors.Conversations.MessageContent("text", "hi"),
            Caas.Streams.Pipeline.IngestSource.Kafka), r.Message);
    }

    [Theory]
    [InlineData(null, "nope", null, "malformed_json")]
    [InlineData(null, "[1,2]", null, "malformed_json")]
    [InlineData("c1", """{"tenant_id":"t-a","conversation_id":"c1","content":{"type":"text"}}""", "t-a", "validation_failed")]
    [InlineData("c1", """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u","message_id":"m"}""", "t-a", "validation_failed")]
    [InlineData("c2", """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u","message_id":"m","content":{"type":"text"}}""", "t-a", "validation_failed")]
    [InlineData("c1", """{"tenant_id":"t-z","conversation_id":"c1","sender_id":"u","message_id":"m","content":{"type":"text"}}""", "t-z", "forbidden")]
    public void A_record_that_cannot_be_a_message_says_why(string? key, string value, string? tenant, string code)
    {
        var r = Read(key, value);
        Assert.Null(r.Message);
        Assert.Equal((tenant, code), (r.TenantId, r.Code));
        Assert.False(string.IsNullOrEmpty(r.Reason));
    }

    [Fact]
    public void A_topic_without_an_allow_list_admits_every_tenant()
    {
        var r = Read(null, """{"tenant_id":"t-z","conversation_id":"c1","sender_id":"u","message_id":"m","content":{"type":"text"}}""", "other.topic");
        Assert.NotNull(r.Message);
    }

    [Fact]
    public void The_0_9_profile_turns_off_version_requests_and_idempotence_and_the_modern_one_keeps_them()
    {
        var old = Settings with { Profile = KafkaSettings.ParseProfile("0.9"), SessionTimeoutMs = 45_000 };
        Assert.False(old.ConsumerConfig().ApiVersionRequest);
        Assert.Equal("0.9.0.1", old.ProducerConfig().BrokerVersionFallback);
        Assert.Equal(30_000, old.ConsumerConfig().SessionTimeoutMs);
        Assert.False(old.ProducerConfig().EnableIdempotence);
        Assert.False(old.Headers);
        var modern = Settings with { Profile = KafkaSettings.ParseProfile(null) };
        Assert.True(modern.ProducerConfig().EnableIdempotence);
        Assert.Null(modern.ConsumerConfig().ApiVersionRequest);
        Assert.True(modern.Headers);
    }

    [Fact]
    public void Settings_come_from_the_environment_and_kafka_is_off_without_a_bootstrap()
    {
        Assert.Null(KafkaSettings.FromEnvironment(_ => null, []));
        var env = new Dictionary<string, string>
        {
            ["CAAS_KAFKA_BOOTSTRAP"] = "k1:9092,k2:9092",
            ["CAAS_KAFKA_GROUP"] = "g1",
            ["CAAS_KAFKA_PROFILE"] = "0.9",
            ["CAAS_KAFKA_ALLOWED_TENANTS"] = "chat.messages=t-a, t-b; other=t-c",
            ["CAAS_KAFKA_CONFIG_SECURITY_PROTOCOL"] = "SASL_SSL",
            ["CAAS_KAFKA_CONFIG_SASL_MECHANISM"] = "PLAIN",
            ["CAAS_KAFKA_MAX_HELD"] = "500",
            ["CAAS_KAFKA_MAX_PENDING_PER_PARTITION"] = "700",
        };
        var s = KafkaSettings.FromEnvironment(k => env.GetValueOrDefault(k), env.Keys)!;
        Assert.Equal(("k1:9092,k2:9092", "g1", KafkaProfile.Compat09), (s.Bootstrap, s.GroupId, s.Profile));
        Assert.True(s.TenantAllowed("chat.messages", "t-b"));
        Assert.False(s.TenantAllowed("chat.messages", "t-c"));
        Assert.True(s.TenantAllowed("other", "t-c"));
        var consumer = s.ConsumerConfig();
        // Passed to librdkafka as written.
        Assert.Equal("SASL_SSL", consumer.Get("security.protocol"));
        Assert.Equal("PLAIN", s.ProducerConfig().Get("sasl.mechanism"));
        Assert.Equal("g1", consumer.GroupId);
        Assert.Throws<ArgumentException>(() => KafkaSettings.ParseProfile("0.8"));
        Assert.Equal(500, s.MaxHeld);
        Assert.Equal(new KafkaSettings { Bootstrap = "k" }.MaxHeld,
            KafkaSettings.FromEnvironment(k => k == "CAAS_KAFKA_BOOTSTRAP" ? "k" : null, [])!.MaxHeld);
        Assert.Throws<ArgumentException>(() => KafkaSettings.FromEnvironment(k => k == "CAAS_KAFKA_MAX_HELD" ? "0" : env.GetValueOrDefault(k), env.Keys));
        Assert.Equal(700, s.MaxPendingPerPartition);
        Assert.Equal(new KafkaSettings { Bootstrap = "k" }.MaxPendingPerPartition,
            KafkaSettings.FromEnvironment(k => k == "CAAS_KAFKA_BOOTSTRAP" ? "k" : null, [])!.MaxPendingPerPartition);
        Assert.Throws<ArgumentException>(() =>
            KafkaSettings.FromEnvironment(k => k == "CAAS_KAFKA_MAX_PENDING_PER_PARTITION" ? "-1" : env.GetValueOrDefault(k), env.Keys));
    }
}
