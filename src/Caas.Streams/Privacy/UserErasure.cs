using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Caas.Actors.Common;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Actors.Sessions;
using Caas.Streams.Audit;
using Caas.Streams.ReadModel;
using Prometheus;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Privacy;

/// <summary>What one erasure did.</summary>
/// <param name="ReadModelSettled">The projection passed the journal's end after the keys were destroyed, and the second
/// scrub ran after that: no row written from plaintext read before the destruction can remain.</param>
public sealed record ErasureReport(string TenantId, string UserId, DateTimeOffset ErasedAt, IReadOnlyList<string> KeysDestroyed,
    long MessagesErased, long DeadLettersErased, bool ReadModelSettled, long SearchEntriesErased = 0, long RecentSearchesErased = 0);

/// <summary>
/// GDPR erasure without rewriting history. The journal keeps every event, sequence number and hash; what makes the
/// user's content unreadable is the destruction of the user's data keys (<see cref="ContentVault"/>). First the user's
/// session entity records <see cref="UserErased"/> (who erased whom, when, which keys: erasure is itself an audited
/// event, recorded before anything is destroyed so a failed erasure leaves its trace and a retry completes it); then
/// the keys are destroyed and every node forgets them; the read model's copies of the content, edit history and
/// enrichment results and the user's dead-letter payloads are scrubbed, once at once and once more after the
/// projection has passed the journal's end (a batch it decrypted just before the destruction cannot bring them back).
/// </summary>
public sealed class UserErasure(ContentVault vault, ReadModelStore store, Operational.OperationalStore operational, ReadModelWriter writer, StorageOptions storage,
    ActorSystem system, Func<IActorRef> userSessions)
{
    public const string ErasedPayload = """{"erased":true}""";

    private static readonly Counter Erasures = Metrics.CreateCounter("caas_user_erasures_total", "Users erased (GDPR).");

    /// <summary>How long an erasure waits for the projection to pass the journal's end before its second scrub.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The search index: the user's entries are deleted (before and after the search projection settles too).</summary>
    public Search.SearchIndex? Search { get; init; }

    /// <summary>The users' recent searches (operational store): the erased user's are forgotten.</summary>
    public Search.RecentSearches? RecentSearches { get; init; }

    public async Task<ErasureReport> EraseAsync(string tenantId, string userId, string actorId, CancellationToken ct = default)
    {
        // The intent is recorded first: if destroying the keys fails, the audit trail still says who asked for what, and
        // a retry (which records again) finds the keys still live and completes the destruction.
        var intended = await vault.LiveKeyIdsAsync(tenantId, userId, ct);
        var recorded = await userSessions().Ask<object>(new EraseUser(tenantId, userId, actorId, [.. intended]), TimeSpan.FromSeconds(15), ct);
        if (recorded is not UserErased erased)
            throw new InvalidOperationException($"The erasure of {userId} was not recorded: {recorded}");

        var keys = await vault.DestroyAsync(tenantId, userId, actorId, ct);
        var notice = new DataKeysDestroyed(tenantId, userId, [.. keys]);
        if (system.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            DistributedPubSub.Get(system).Mediator.Tell(new Publish(DataKeysDestroyed.Topic, notice));
        Erasures.Inc();
        Pipeline.DedupeWindow.Of(system).Forget(tenantId, userId);

        var (messages, letters) = await ScrubAsync(tenantId, userId, ct);
        var searchEntries = Search is null ? 0 : await Search.EraseUserAsync(tenantId, userId, ct);
        var settled = await WaitForProjectionAsync(ct);
        var (moreMessages, moreLetters) = await ScrubAsync(tenantId, userId, ct);
        if (Search is not null)
        {
            // The search projection too may have opened a batch just before the keys went: erased again once it has passed.
            await WaitForProjectionAsync(ct, Caas.Streams.Search.SearchIndex.ProjectionName);
            searchEntries += await Search.EraseUserAsync(tenantId, userId, ct);
        }
        var recent = RecentSearches is null ? 0 : await RecentSearches.ClearAsync(tenantId, userId, ct);
        return new ErasureReport(tenantId, userId, erased.Meta.OccurredAt, keys, messages + moreMessages, letters + moreLetters, settled,
            searchEntries, recent);
    }

    /// <summary>
    /// Erases the user's content in the read model (text, edit history, enrichment) and in dead-letter payloads (in the
    /// operational store). Each update is idempotent, so a failure between the two is completed by the second scrub or a retry.
    /// </summary>
    public async Task<(long Messages, long DeadLetters)> ScrubAsync(string tenantId, string userId, CancellationToken ct = default)
    {
        long messages, letters;
        await using (var c = await store.OpenAsync(ct))
        await using (var cmd = Command(c, null,
                         "UPDATE rm_messages SET content_type = CASE WHEN deleted = 1 THEN NULL ELSE @erased END, text = NULL, enrichment = NULL, versions = '[]', attachment = NULL " +
                         "WHERE tenant_id = @t AND sender_id = @u AND (deleted = 0 AND (content_type IS NULL OR content_type <> @erased) " +
                         "OR text IS NOT NULL OR enrichment IS NOT NULL OR versions <> '[]' OR attachment IS NOT NULL)",
                         ("erased", ContentSealing.Erased.Type), ("t", tenantId), ("u", userId)))
            messages = await cmd.ExecuteNonQueryAsync(ct);
        await using (var c = await operational.OpenAsync(ct))
        await using (var cmd = Command(c, null,
                         "UPDATE dead_letters SET payload = @erased WHERE tenant_id = @t AND sender_id = @u AND payload <> @erased",
                         ("erased", ErasedPayload), ("t", tenantId), ("u", userId)))
            letters = await cmd.ExecuteNonQueryAsync(ct);
        return (messages, letters);
    }

    private async Task<bool> WaitForProjectionAsync(CancellationToken ct, string projection = ProjectionName)
    {
        var target = await ProjectionRebuilds.LastConversationOffsetAsync(storage, ct);
        var until = DateTime.UtcNow + SettleTimeout;
        while (DateTime.UtcNow < until)
        {
            if (await writer.LoadOffsetAsync(projection, ct) >= target) return true;
            await Task.Delay(100, ct);
        }
        return false;
    }
}

/// <summary>On every node: forgets the data keys another node destroyed.</summary>
public sealed class DataKeyEvictions : ReceiveActor
{
    public DataKeyEvictions(ContentVault vault)
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(DataKeysDestroyed.Topic, Self));
        Receive<SubscribeAck>(_ => { });
        Receive<DataKeysDestroyed>(d => vault.Evict(d.TenantId, d.UserId, d.KeyIds));
    }

    public static Props PropsFor(ContentVault vault) => Props.Create(() => new DataKeyEvictions(vault));
}
