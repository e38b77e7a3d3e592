using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Calls;
using Caas.Streams.ReadModel;
using static Caas.Streams.ReadModel.ReadModelWriter;

namespace Caas.Streams.Calls;

/// <summary>A recording as the read model holds it (every recording of the tenant, the deleted ones included).</summary>
/// <param name="Participants">everyone asked to consent (the requester included), ordered by user id</param>
/// <param name="Consents">the answers given, ordered by time then user id (as the call entity orders them)</param>
/// <param name="Quality">the call's quality summary, once the call has ended (null before, or when nobody reported)</param>
public sealed record RecordingRow(string TenantId, string RecordingId, string ConversationId, string CallId, string RequestedBy,
    DateTimeOffset RequestedAt, string Status, IReadOnlyList<RecordingConsent> Consents, IReadOnlyList<string> Participants,
    DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, double DurationSeconds, string? EndReason, RecordingFile? File,
    IReadOnlyList<ParticipantQuality>? Quality, DateTimeOffset? DeletedAt, string? DeletedBy, string? DeleteReason);

/// <summary>A tenant's recordings over a period (by request time).</summary>
/// <param name="DeclineRate">requests that ended without recording anything / requests that ended; null when none ended</param>
/// <param name="AverageQuality">the participants' average rtt, jitter, loss and bitrate; null when nobody reported</param>
public sealed record RecordingStats(long Count, long Recorded, long Declined, long Deleted, double TotalDurationSeconds,
    double? AverageDurationSeconds, long Bytes, double? DeclineRate, RecordingQualityAverage? AverageQuality);

/// <summary>Averages of the participants' per-call averages; a metric nobody reported is null.</summary>
public sealed record RecordingQualityAverage(double? RttMs, double? JitterMs, double? PacketLossPct, double? BitrateKbps);

/// <summary>
/// The recordings read model (issue #16): <c>rm_recordings</c>, one row per recording, with
/// <c>rm_recording_participants</c> (everyone asked, with their consent: the erasure lookup) and
/// <c>rm_recording_quality</c> (the call's quality per participant, for the averages). Written by
/// <see cref="RecordingProjection"/> from the call entities' events (tag <c>call</c>) with its offset in the same
/// transaction. Status and duration follow <see cref="CallRoomState"/>'s rules exactly (the recording clock runs from
/// each start to the next stop, kept in ticks so the seconds are the entity's). Each row keeps the call entity's
/// sequence number of the last event it applied, so a replayed batch changes nothing.
/// </summary>
public sealed class RecordingReadModel(ReadModelStore store)
{
    public const string ProjectionName = "recordings";
    public const string Pending = "pending", Recording = "recording", Paused = "paused", Declined = "declined", Recorded = "recorded", Deleted = "deleted";

    private static readonly JsonSerializerOptions QualityJson = new(JsonSerializerDefaults.General);

    private static readonly string[] Schema =
    [
        """
        CREATE TABLE IF NOT EXISTS rm_recordings (
            tenant_id TEXT NOT NULL, recording_id TEXT NOT NULL, conversation_id TEXT NOT NULL, call_id TEXT NOT NULL,
            requested_by TEXT NOT NULL, requested_at BIGINT NOT NULL, status TEXT NOT NULL, started_at BIGINT NULL, ended_at BIGINT NULL,
            duration_seconds DOUBLE PRECISION NOT NULL, end_reason TEXT NULL, recorded_seconds DOUBLE PRECISION NOT NULL, recording_since BIGINT NULL,
            file_id TEXT NULL, file_name TEXT NULL, format TEXT NULL, size BIGINT NULL, sha256 TEXT NULL, storage TEXT NULL, stored_at BIGINT NULL,
            quality TEXT NULL, deleted_at BIGINT NULL, deleted_by TEXT NULL, delete_reason TEXT NULL, last_seq BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, recording_id))
        """,
        "CREATE INDEX IF NOT EXISTS rm_recordings_by_time ON rm_recordings (tenant_id, requested_at, recording_id)",
        "CREATE INDEX IF NOT EXISTS rm_recordings_by_conversation ON rm_recordings (tenant_id, conversation_id, requested_at, recording_id)",
        "CREATE INDEX IF NOT EXISTS rm_recordings_by_call ON rm_recordings (tenant_id, call_id)",
        """
        CREATE TABLE IF NOT EXISTS rm_recording_participants (
            tenant_id TEXT NOT NULL, recording_id TEXT NOT NULL, user_id TEXT NOT NULL, consent INTEGER NULL, consent_at BIGINT NULL,
            consent_how TEXT NULL, PRIMARY KEY (tenant_id, recording_id, user_id))
        """,
        "CREATE INDEX IF NOT EXISTS rm_recording_participants_by_user ON rm_recording_participants (tenant_id, user_id, recording_id)",
        """
        CREATE TABLE IF NOT EXISTS rm_recording_quality (
            tenant_id TEXT NOT NULL, recording_id TEXT NOT NULL, user_id TEXT NOT NULL, reports INTEGER NOT NULL, rtt_ms DOUBLE PRECISION NULL,
            jitter_ms DOUBLE PRECISION NULL, packet_loss_pct DOUBLE PRECISION NULL, bitrate_kbps DOUBLE PRECISION NULL,
            PRIMARY KEY (tenant_id, recording_id, user_id))
        """,
    ];

    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        foreach (var sql in Schema) await ReadModelStore.ExecuteAsync(c, sql, ct);
    }

    public Task<long> LoadOffsetAsync(CancellationToken ct = default) => ReadModelWriter.LoadOffsetAsync(store, ProjectionName, ct);

    // ---- writing ----------------------------------------------------------------------------------------------------

    private sealed record Answer(bool? Consent, long? At, string? How);

    /// <summary>A recording's row while a batch is applied (loaded once, written once at the end).</summary>
    private sealed class Draft
    {
        public string TenantId = "", RecordingId = "", ConversationId = "", CallId = "", RequestedBy = "", Status = Pending;
        public long RequestedAt, LastSeq;
        public long? StartedAt, EndedAt, StoredAt, DeletedAt, Size, RecordingSinceTicks;
        public double DurationSeconds, RecordedSeconds;
        public string? EndReason, FileId, FileName, Format, Sha256, Storage, DeletedBy, DeleteReason, Quality;
        public Dictionary<string, Answer> Participants = new(StringComparer.Ordinal);
        public bool QualityChanged;

        public bool Active => Status is Pending or Recording or Paused;

        public void Ask(string user) => Participants.TryAdd(user, new Answer(null, null, null));

        /// <summary>The recording clock, as <see cref="CallRoomState"/> runs it: the time recorded plus the current run.</summary>
        public double RecordedUntil(DateTimeOffset at) =>
            RecordedSeconds + (RecordingSinceTicks is { } since ? Math.Max(0, (at - new DateTimeOffset(since, TimeSpan.Zero)).TotalSeconds) : 0);
    }

    /// <summary>Applies a batch of call events and stores the offset, in one transaction; idempotent (a replay changes nothing).</summary>
    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, CancellationToken ct = default)
    {
        if (batch.Count == 0) return;
        await using var c = await store.OpenAsync(ct);
        using var turn = await store.WriteTurnAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var drafts = new Dictionary<(string, string), Draft?>();

        async Task<Draft?> Find(string tenant, string recordingId)
        {
            if (!drafts.TryGetValue((tenant, recordingId), out var d)) drafts[(tenant, recordingId)] = d = await LoadDraftAsync(c, tx, tenant, recordingId, ct);
            return d;
        }

        async Task<List<Draft>> OfCall(string tenant, string callId)
        {
            var ids = new List<string>();
            await using (var cmd = Command(c, tx, "SELECT recording_id FROM rm_recordings WHERE tenant_id = @t AND call_id = @c", ("t", tenant), ("c", callId)))
            await using (var r = await cmd.ExecuteReaderAsync(ct))
                while (await r.ReadAsync(ct)) ids.Add(r.GetString(0));
            foreach (var id in ids) await Find(tenant, id);
            return [.. drafts.Values.OfType<Draft>().Where(d => d.TenantId == tenant && d.CallId == callId)];
        }

        foreach (var envelope in batch)
        {
            if (envelope.Event is not ICallEvent e) continue;
            var tenant = e.Meta.TenantId;
            var seq = envelope.SequenceNr;
            var at = e.Meta.OccurredAt;
            var ms = at.ToUnixTimeMilliseconds();
            switch (e)
            {
                case CallRecordingRequested q:
                {
                    if (await Find(tenant, q.RecordingId) is { } known && known.LastSeq >= seq) break;
                    var d = new Draft
                    {
                        TenantId = tenant, RecordingId = q.RecordingId, ConversationId = ConversationOf(envelope.PersistenceId, q.CallId), CallId = q.CallId,
                        RequestedBy = q.RequestedBy, RequestedAt = ms, LastSeq = seq,
                    };
                    d.Participants[q.RequestedBy] = new Answer(true, ms, ConsentMethods.Requested);
                    foreach (var u in q.Awaiting) d.Ask(u);
                    drafts[(tenant, q.RecordingId)] = d;
                    break;
                }
                case CallParticipantJoined j:
                    foreach (var d in await OfCall(tenant, j.CallId))
                    {
                        if (!Fresh(d, seq)) continue;
                        // Joining while consents are awaited: the newcomer is asked too (CallRoomState adds them to Awaiting).
                        if (d.Status is Pending or Paused) d.Ask(j.UserId);
                    }
                    break;
                case CallEnded x:
                    foreach (var d in await OfCall(tenant, x.CallId))
                    {
                        if (!Fresh(d, seq)) continue;
                        d.Quality = x.Quality is { Count: > 0 } quality ? JsonSerializer.Serialize(quality, QualityJson) : null;
                        d.QualityChanged = true;
                    }
                    break;
                case CallRecordingConsented k:
                    if (await Find(tenant, k.RecordingId) is { Active: true } consented && Fresh(consented, seq))
                        consented.Participants[k.UserId] = new Answer(k.Consent, ms, k.How);
                    break;
                case CallRecordingStarted s:
                    if (await Find(tenant, s.RecordingId) is { Active: true } started && Fresh(started, seq))
                    {
                        started.Status = Recording;
                        started.StartedAt ??= ms;
                        started.RecordingSinceTicks = at.UtcTicks;
                    }
                    break;
                case CallRecordingStopped { Reason: RecordingReasons.ConsentPending } p:
                    if (await Find(tenant, p.RecordingId) is { Active: true } paused && Fresh(paused, seq))
                    {
                        paused.Status = Paused;
                        paused.RecordedSeconds = paused.RecordedUntil(at);
                        paused.RecordingSinceTicks = null;
                        foreach (var u in p.Awaiting ?? []) paused.Ask(u);
                    }
                    break;
                case CallRecordingStopped p:
                    if (await Find(tenant, p.RecordingId) is { Active: true } stopped && Fresh(stopped, seq)) Over(stopped, at, p.Reason);
                    break;
                case CallRecordingDeclined n:
                    if (await Find(tenant, n.RecordingId) is { Active: true } declined && Fresh(declined, seq))
                    {
                        foreach (var u in n.UserIds) declined.Ask(u);
                        Over(declined, at, n.Reason);
                    }
                    break;
                case CallRecordingStored st:
                    if (await Find(tenant, st.RecordingId) is { } stored && Fresh(stored, seq))
                    {
                        (stored.FileId, stored.FileName, stored.Format, stored.Size, stored.Sha256, stored.Storage, stored.StoredAt) =
                            (st.File.FileId, st.File.FileName, st.File.ContentType, st.File.Size, st.File.Sha256, st.File.Storage, ms);
                    }
                    break;
                case CallRecordingDeleted del:
                    if (await Find(tenant, del.RecordingId) is { } deleted && Fresh(deleted, seq))
                        (deleted.Status, deleted.DeletedAt, deleted.DeletedBy, deleted.DeleteReason) = (Deleted, ms, del.By, del.Reason);
                    break;
            }
        }

        foreach (var d in drafts.Values.OfType<Draft>()) await SaveDraftAsync(c, tx, d, ct);
        await SaveOffsetAsync(c, tx, ProjectionName, ((Sequence)batch[^1].Offset).Value, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>True (and marked) when the event is newer than what the row has applied; a replayed one is skipped.</summary>
    private static bool Fresh(Draft d, long seq)
    {
        if (seq <= d.LastSeq) return false;
        d.LastSeq = seq;
        return true;
    }

    /// <summary>The recording is over: recorded if anything was, else declined (<see cref="CallRoomState"/>).</summary>
    private static void Over(Draft d, DateTimeOffset at, string reason)
    {
        d.DurationSeconds = d.RecordedUntil(at);
        d.RecordedSeconds = d.DurationSeconds;
        d.RecordingSinceTicks = null;
        d.Status = d.StartedAt is null ? Declined : Recorded;
        d.EndedAt = at.ToUnixTimeMilliseconds();
        d.EndReason = reason;
    }

    /// <summary>The conversation of a call entity's event: its persistence id is <c>calls|tenant|conversation</c>.</summary>
    private static string ConversationOf(string persistenceId, string callId)
    {
        var parts = persistenceId.Split('|');
        if (parts is ["calls", _, var conversation]) return conversation;
        return CallIds.TryParse(callId, out var fromId) ? fromId : "";
    }

    private const string Columns =
        "tenant_id, recording_id, conversation_id, call_id, requested_by, requested_at, status, started_at, ended_at, duration_seconds, end_reason, " +
        "recorded_seconds, recording_since, file_id, file_name, format, size, sha256, storage, stored_at, quality, deleted_at, deleted_by, delete_reason, last_seq";

    private static async Task<Draft?> LoadDraftAsync(DbConnection c, DbTransaction tx, string tenant, string recordingId, CancellationToken ct)
    {
        Draft d;
        await using (var cmd = Command(c, tx, $"SELECT {Columns} FROM rm_recordings WHERE tenant_id = @t AND recording_id = @r", ("t", tenant), ("r", recordingId)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct)) return null;
            d = new Draft
            {
                TenantId = r.GetString(0), RecordingId = r.GetString(1), ConversationId = r.GetString(2), CallId = r.GetString(3), RequestedBy = r.GetString(4),
                RequestedAt = r.GetInt64(5), Status = r.GetString(6), StartedAt = Long(r, 7), EndedAt = Long(r, 8), DurationSeconds = r.GetDouble(9),
                EndReason = Str(r, 10), RecordedSeconds = r.GetDouble(11), RecordingSinceTicks = Long(r, 12), FileId = Str(r, 13), FileName = Str(r, 14),
                Format = Str(r, 15), Size = Long(r, 16), Sha256 = Str(r, 17), Storage = Str(r, 18), StoredAt = Long(r, 19), Quality = Str(r, 20),
                DeletedAt = Long(r, 21), DeletedBy = Str(r, 22), DeleteReason = Str(r, 23), LastSeq = r.GetInt64(24),
            };
        }
        await using (var cmd = Command(c, tx, "SELECT user_id, consent, consent_at, consent_how FROM rm_recording_participants WHERE tenant_id = @t AND recording_id = @r",
                         ("t", tenant), ("r", recordingId)))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                d.Participants[r.GetString(0)] = new Answer(r.IsDBNull(1) ? null : Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture) != 0, Long(r, 2), Str(r, 3));
        return d;
    }

    private static async Task SaveDraftAsync(DbConnection c, DbTransaction tx, Draft d, CancellationToken ct)
    {
        var names = Columns.Split(", ");
        var updates = string.Join(", ", names.Skip(2).Select(n => $"{n} = excluded.{n}"));
        await using (var cmd = Command(c, tx,
                         $"INSERT INTO rm_recordings ({Columns}) VALUES (@t, @r, @conv, @call, @by, @at, @status, CAST(@started AS BIGINT), CAST(@ended AS BIGINT), " +
                         "@duration, @reason, @recorded, CAST(@since AS BIGINT), @file, @name, @format, CAST(@size AS BIGINT), @sha, @storage, CAST(@stored AS BIGINT), " +
                         $"@quality, CAST(@deleted AS BIGINT), @deletedby, @deletereason, @seq) ON CONFLICT (tenant_id, recording_id) DO UPDATE SET {updates}",
                         ("t", d.TenantId), ("r", d.RecordingId), ("conv", d.ConversationId), ("call", d.CallId), ("by", d.RequestedBy), ("at", d.RequestedAt),
                         ("status", d.Status), ("started", d.StartedAt), ("ended", d.EndedAt), ("duration", d.DurationSeconds), ("reason", d.EndReason),
                         ("recorded", d.RecordedSeconds), ("since", d.RecordingSinceTicks), ("file", d.FileId), ("name", d.FileName), ("format", d.Format),
                         ("size", d.Size), ("sha", d.Sha256), ("storage", d.Storage), ("stored", d.StoredAt), ("quality", d.Quality), ("deleted", d.DeletedAt),
                         ("deletedby", d.DeletedBy), ("deletereason", d.DeleteReason), ("seq", d.LastSeq)))
            await cmd.ExecuteNonQueryAsync(ct);
        foreach (var (user, a) in d.Participants)
        {
            await using var cmd = Command(c, tx,
                "INSERT INTO rm_recording_participants (tenant_id, recording_id, user_id, consent, consent_at, consent_how) " +
                "VALUES (@t, @r, @u, CAST(@consent AS INTEGER), CAST(@at AS BIGINT), @how) ON CONFLICT (tenant_id, recording_id, user_id) " +
                "DO UPDATE SET consent = excluded.consent, consent_at = excluded.consent_at, consent_how = excluded.consent_how",
                ("t", d.TenantId), ("r", d.RecordingId), ("u", user), ("consent", a.Consent is { } yes ? (yes ? 1 : 0) : null), ("at", a.At), ("how", a.How));
            await cmd.ExecuteNonQueryAsync(ct);
        }
        if (!d.QualityChanged) return;
        await using (var cmd = Command(c, tx, "DELETE FROM rm_recording_quality WHERE tenant_id = @t AND recording_id = @r", ("t", d.TenantId), ("r", d.RecordingId)))
            await cmd.ExecuteNonQueryAsync(ct);
        foreach (var q in ParseQuality(d.Quality) ?? [])
        {
            await using var cmd = Command(c, tx,
                "INSERT INTO rm_recording_quality (tenant_id, recording_id, user_id, reports, rtt_ms, jitter_ms, packet_loss_pct, bitrate_kbps) " +
                "VALUES (@t, @r, @u, @n, CAST(@rtt AS DOUBLE PRECISION), CAST(@jitter AS DOUBLE PRECISION), CAST(@loss AS DOUBLE PRECISION), CAST(@rate AS DOUBLE PRECISION))",
                ("t", d.TenantId), ("r", d.RecordingId), ("u", q.UserId), ("n", q.Reports), ("rtt", q.RttMs?.Avg), ("jitter", q.JitterMs?.Avg),
                ("loss", q.PacketLossPct?.Avg), ("rate", q.BitrateKbps?.Avg));
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    // ---- reading ----------------------------------------------------------------------------------------------------

    public async Task<RecordingRow?> GetAsync(string tenantId, string recordingId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        return (await ReadRowsAsync(c, $"SELECT {Columns} FROM rm_recordings WHERE tenant_id = @t AND recording_id = @r", ct, ("t", tenantId), ("r", recordingId)))
            .FirstOrDefault();
    }

    /// <summary>
    /// The tenant's recordings, newest first (by request time, then id), optionally of one conversation and requested
    /// within [<paramref name="from"/>, <paramref name="to"/>), after a keyset cursor (request ms, recording id).
    /// </summary>
    public async Task<IReadOnlyList<RecordingRow>> ListAsync(string tenantId, string? conversationId, DateTimeOffset? from, DateTimeOffset? to, int limit,
        (long RequestedMs, string RecordingId)? before, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        var sql = $"SELECT {Columns} FROM rm_recordings WHERE tenant_id = @t" +
                  (conversationId is null ? "" : " AND conversation_id = @c") +
                  (from is null ? "" : " AND requested_at >= @from") +
                  (to is null ? "" : " AND requested_at < @to") +
                  (before is null ? "" : " AND (requested_at < @bt OR (requested_at = @bt AND recording_id < @br))") +
                  " ORDER BY requested_at DESC, recording_id DESC LIMIT @n";
        return await ReadRowsAsync(c, sql, ct, ("t", tenantId), ("c", conversationId), ("from", from?.ToUnixTimeMilliseconds() ?? 0),
            ("to", to?.ToUnixTimeMilliseconds() ?? 0), ("bt", before?.RequestedMs ?? 0), ("br", before?.RecordingId ?? ""), ("n", limit));
    }

    /// <summary>The recordings <paramref name="userId"/> appears in (asked for, consented to or was asked about), not yet deleted.</summary>
    public async Task<IReadOnlyList<RecordingRow>> OfUserAsync(string tenantId, string userId, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        return await ReadRowsAsync(c,
            $"SELECT {Columns} FROM rm_recordings WHERE tenant_id = @t AND status <> 'deleted' AND (requested_by = @u OR recording_id IN " +
            "(SELECT recording_id FROM rm_recording_participants WHERE tenant_id = @t AND user_id = @u)) ORDER BY requested_at, recording_id",
            ct, ("t", tenantId), ("u", userId));
    }

    public async Task<RecordingStats> StatsAsync(string tenantId, DateTimeOffset? from, DateTimeOffset? to, CancellationToken ct = default)
    {
        await using var c = await store.OpenAsync(ct);
        var range = (from is null ? "" : " AND r.requested_at >= @from") + (to is null ? "" : " AND r.requested_at < @to");
        (string, object?)[] args = [("t", tenantId), ("from", from?.ToUnixTimeMilliseconds() ?? 0), ("to", to?.ToUnixTimeMilliseconds() ?? 0)];
        long count, recorded, declined, deleted, finishedRecorded, neverRecorded, finished, bytes;
        double total;
        await using (var cmd = Command(c, null,
                         "SELECT COUNT(*), " +
                         "SUM(CASE WHEN r.status = 'recorded' THEN 1 ELSE 0 END), SUM(CASE WHEN r.status = 'declined' THEN 1 ELSE 0 END), " +
                         "SUM(CASE WHEN r.status = 'deleted' THEN 1 ELSE 0 END), " +
                         "SUM(CASE WHEN r.ended_at IS NOT NULL AND r.started_at IS NOT NULL THEN r.duration_seconds ELSE 0 END), " +
                         "SUM(CASE WHEN r.ended_at IS NOT NULL AND r.started_at IS NOT NULL THEN 1 ELSE 0 END), " +
                         "SUM(CASE WHEN r.ended_at IS NOT NULL AND r.started_at IS NULL THEN 1 ELSE 0 END), " +
                         "SUM(CASE WHEN r.ended_at IS NOT NULL THEN 1 ELSE 0 END), " +
                         "SUM(CASE WHEN r.deleted_at IS NULL AND r.size IS NOT NULL THEN r.size ELSE 0 END) " +
                         "FROM rm_recordings r WHERE r.tenant_id = @t" + range, args))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            long L(int i) => r.IsDBNull(i) ? 0 : Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);
            (count, recorded, declined, deleted, finishedRecorded, neverRecorded, finished, bytes) = (L(0), L(1), L(2), L(3), L(5), L(6), L(7), L(8));
            total = r.IsDBNull(4) ? 0 : Convert.ToDouble(r.GetValue(4), CultureInfo.InvariantCulture);
        }
        RecordingQualityAverage? quality = null;
        await using (var cmd = Command(c, null,
                         "SELECT COUNT(*), AVG(q.rtt_ms), AVG(q.jitter_ms), AVG(q.packet_loss_pct), AVG(q.bitrate_kbps) FROM rm_recording_quality q " +
                         "JOIN rm_recordings r ON r.tenant_id = q.tenant_id AND r.recording_id = q.recording_id WHERE r.tenant_id = @t" + range, args))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            await r.ReadAsync(ct);
            double? D(int i) => r.IsDBNull(i) ? null : Math.Round(Convert.ToDouble(r.GetValue(i), CultureInfo.InvariantCulture), 3);
            if (Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture) > 0 && new[] { D(1), D(2), D(3), D(4) } is var m && m.Any(v => v is not null))
                quality = new RecordingQualityAverage(m[0], m[1], m[2], m[3]);
        }
        return new RecordingStats(count, recorded, declined, deleted, total, finishedRecorded == 0 ? null : total / finishedRecorded, bytes,
            finished == 0 ? null : (double)neverRecorded / finished, quality);
    }

    private static async Task<List<RecordingRow>> ReadRowsAsync(DbConnection c, string sql, CancellationToken ct, params (string, object?)[] args)
    {
        var drafts = new List<Draft>();
        await using (var cmd = Command(c, null, sql, args))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                drafts.Add(new Draft
                {
                    TenantId = r.GetString(0), RecordingId = r.GetString(1), ConversationId = r.GetString(2), CallId = r.GetString(3), RequestedBy = r.GetString(4),
                    RequestedAt = r.GetInt64(5), Status = r.GetString(6), StartedAt = Long(r, 7), EndedAt = Long(r, 8), DurationSeconds = r.GetDouble(9),
                    EndReason = Str(r, 10), FileId = Str(r, 13), FileName = Str(r, 14), Format = Str(r, 15), Size = Long(r, 16), Sha256 = Str(r, 17),
                    Storage = Str(r, 18), Quality = Str(r, 20), DeletedAt = Long(r, 21), DeletedBy = Str(r, 22), DeleteReason = Str(r, 23),
                });
        foreach (var chunk in drafts.Chunk(200))
        {
            var byId = chunk.ToDictionary(d => d.RecordingId, StringComparer.Ordinal);
            var names = chunk.Select((_, i) => "@p" + i).ToArray();
            await using var cmd = Command(c, null,
                $"SELECT recording_id, user_id, consent, consent_at, consent_how FROM rm_recording_participants WHERE tenant_id = @t AND recording_id IN ({string.Join(", ", names)})",
                [("t", chunk[0].TenantId), .. chunk.Select((d, i) => ("p" + i, (object?)d.RecordingId))]);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
                if (byId.TryGetValue(r.GetString(0), out var d))
                    d.Participants[r.GetString(1)] = new Answer(r.IsDBNull(2) ? null : Convert.ToInt64(r.GetValue(2), CultureInfo.InvariantCulture) != 0, Long(r, 3), Str(r, 4));
        }
        return [.. drafts.Select(ToRow)];
    }

    private static RecordingRow ToRow(Draft d) => new(d.TenantId, d.RecordingId, d.ConversationId, d.CallId, d.RequestedBy, Time(d.RequestedAt), d.Status,
        [.. d.Participants.Where(p => p.Value is { Consent: not null, At: not null }).Select(p => new RecordingConsent(p.Key, p.Value.Consent!.Value, Time(p.Value.At!.Value), p.Value.How ?? ""))
            .OrderBy(x => x.At).ThenBy(x => x.UserId, StringComparer.Ordinal)],
        [.. d.Participants.Keys.Order(StringComparer.Ordinal)],
        d.StartedAt is { } s ? Time(s) : null, d.EndedAt is { } e ? Time(e) : null, d.DurationSeconds, d.EndReason,
        d.FileId is null ? null : new RecordingFile(d.FileId, d.FileName ?? "", d.Format ?? "", d.Size ?? 0, d.Sha256 ?? "", d.Storage ?? ""),
        ParseQuality(d.Quality), d.DeletedAt is { } x ? Time(x) : null, d.DeletedBy, d.DeleteReason);

    private static IReadOnlyList<ParticipantQuality>? ParseQuality(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<List<ParticipantQuality>>(json, QualityJson);

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static long? Long(DbDataReader r, int i) => r.IsDBNull(i) ? null : Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);

    private static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}

/// <summary>The recordings projection (a cluster singleton on a projections node): events tagged <c>call</c> into <see cref="RecordingReadModel"/>.</summary>
public static class RecordingProjection
{
    /// <param name="repair">Late-commit repair (PostgreSQL; its prefix <c>calls|</c>), or none.</param>
    public static Props PropsFor(RecordingReadModel model, ProjectionSettings settings, TagRepair? repair = null) =>
        TagProjection.PropsFor(RecordingReadModel.ProjectionName, CallRoomActor.KindTag, settings, () => model.LoadOffsetAsync(), list => model.WriteAsync(list),
            repair);
}

/// <summary>Registry key of the recordings projection singleton.</summary>
public sealed class RecordingProjectionKey;
