using System.Data.Common;
using System.Text.Json;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Actors.Serialization;

namespace Caas.Streams.ReadModel;

/// <summary>
/// Writes a batch of conversation events into the read-model tables and the projection's offset in one
/// transaction: a crash replays the batch, and a replayed batch never writes twice.
/// </summary>
public sealed class ReadModelWriter(ReadModelStore store)
{
    public const string ProjectionName = "conversations";

    public async Task<long> LoadOffsetAsync(string name = ProjectionName, CancellationToken ct = default)
    {
        await using var connection = await store.OpenAsync(ct);
        await using var cmd = Command(connection, null, "SELECT last_offset FROM rm_projection_offsets WHERE name = @name", ("name", name));
        return await cmd.ExecuteScalarAsync(ct) is { } value and not DBNull ? Convert.ToInt64(value) : 0L;
    }

    /// <summary>Empties the projection's tables and forgets its offset, in one transaction: a rebuild starts here.</summary>
    public async Task ResetAsync(string name = ProjectionName, CancellationToken ct = default)
    {
        await using var connection = await store.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        foreach (var table in new[] { "rm_conversations", "rm_memberships", "rm_messages", "rm_moderation_log" })
            await using (var cmd = Command(connection, tx, "DELETE FROM " + table))
                await cmd.ExecuteNonQueryAsync(ct);
        await using (var cmd = Command(connection, tx, "DELETE FROM rm_projection_offsets WHERE name = @name", ("name", name)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    public async Task WriteAsync(IReadOnlyList<EventEnvelope> batch, string name = ProjectionName, CancellationToken ct = default)
    {
        if (batch.Count == 0) return;
        await using var connection = await store.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // New messages (most of any batch) go in as multi-row inserts. An edit, delete or reaction on a message that
        // is still waiting in this batch is folded into its row in memory, as the SQL would change it; every other
        // change goes to the database at once (its message is already there). Conversations' last_seq is raised
        // once per conversation at the end.
        var pending = new Dictionary<(string Tenant, string Conversation, long Seq), PendingMessage>();
        var lastSeq = new Dictionary<(string Tenant, string Conversation), long>();
        foreach (var envelope in batch)
        {
            if (envelope.Event is not IConversationEvent e) continue;
            var (tenant, conversation) = Ids.SplitEntityId(envelope.PersistenceId["conversation|".Length..]);
            switch (e)
            {
                case MessagePosted p:
                    pending.TryAdd((tenant, conversation, p.Seq), new PendingMessage(tenant, conversation, p));
                    lastSeq[(tenant, conversation)] = Math.Max(lastSeq.GetValueOrDefault((tenant, conversation)), p.Seq);
                    if (pending.Count >= MaxRowsPerInsert) await InsertMessagesAsync(connection, tx, pending, ct);
                    continue;
                case MessageEdited edit when pending.TryGetValue((tenant, conversation, edit.Seq), out var row):
                    row.Edit(edit);
                    continue;
                case MessageDeleted deleted when pending.TryGetValue((tenant, conversation, deleted.Seq), out var row):
                    row.Delete();
                    continue;
                case ReactionAdded or ReactionRemoved when pending.TryGetValue((tenant, conversation, SeqOf(e)), out var row):
                    row.React(e);
                    continue;
            }
            await ApplyAsync(connection, tx, tenant, conversation, ((Sequence)envelope.Offset).Value, e, ct);
        }
        await InsertMessagesAsync(connection, tx, pending, ct);
        foreach (var ((tenant, conversation), seq) in lastSeq)
        {
            await using var update = Command(connection, tx,
                "UPDATE rm_conversations SET last_seq = @seq WHERE tenant_id = @t AND conversation_id = @c AND last_seq < @seq",
                ("t", tenant), ("c", conversation), ("seq", seq));
            await update.ExecuteNonQueryAsync(ct);
        }
        var last = ((Sequence)batch[^1].Offset).Value;
        await using (var cmd = Command(connection, tx,
                         "INSERT INTO rm_projection_offsets (name, last_offset) VALUES (@name, @offset) " +
                         "ON CONFLICT (name) DO UPDATE SET last_offset = excluded.last_offset",
                         ("name", name), ("offset", last)))
            await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    private const int MaxRowsPerInsert = 500;

    private static long SeqOf(IConversationEvent e) => e switch
    {
        ReactionAdded a => a.Seq,
        ReactionRemoved r => r.Seq,
        _ => -1,
    };

    /// <summary>A message row not yet written, with the changes later events of the same batch made to it.</summary>
    private sealed class PendingMessage(string tenant, string conversation, MessagePosted posted)
    {
        public string Tenant { get; } = tenant;
        public string Conversation { get; } = conversation;
        public MessagePosted Posted { get; } = posted;
        public string? ContentType { get; private set; } = posted.Content.Type;
        public string? Text { get; private set; } = posted.Content.Text;
        public long? EditedAt { get; private set; }
        public bool Deleted { get; private set; }
        public bool HasEnrichment { get; private set; } = posted.Enrichment is not null;
        public List<MessageVersion> Versions { get; } = [];
        public SortedDictionary<string, SortedSet<string>> Reactions { get; } = new(StringComparer.Ordinal);

        public void Edit(MessageEdited edit)
        {
            if (edit.Content.Type == ContentSealing.Erased.Type) Versions.Clear();
            else Versions.Add(new MessageVersion(Text, edit.Meta.OccurredAt));
            Text = edit.Content.Text;
            ContentType = edit.Content.Type;
            EditedAt = edit.Meta.OccurredAt.ToUnixTimeMilliseconds();
        }

        public void Delete()
        {
            Deleted = true;
            Text = null;
            ContentType = null;
            Versions.Clear();
            HasEnrichment = false;
        }

        public void React(IConversationEvent e) => ApplyReaction(Reactions, e);
    }

    private static async Task InsertMessagesAsync(DbConnection c, DbTransaction tx,
        Dictionary<(string Tenant, string Conversation, long Seq), PendingMessage> pending, CancellationToken ct)
    {
        if (pending.Count == 0) return;
        if (c is Microsoft.Data.Sqlite.SqliteConnection)
        {
            await InsertMessagesOneByOneAsync(c, tx, pending, ct);
            return;
        }
        var sql = new System.Text.StringBuilder(
            "INSERT INTO rm_messages (tenant_id, conversation_id, seq, message_id, sender_id, content_type, text, created_at, edited_at, deleted, reactions, versions, enrichment) VALUES ");
        var args = new List<(string, object?)>(pending.Count * 13);
        var i = 0;
        foreach (var row in pending.Values)
        {
            var p = row.Posted;
            if (i > 0) sql.Append(", ");
            sql.Append($"(@t{i}, @c{i}, @s{i}, @m{i}, @u{i}, @y{i}, @x{i}, @a{i}, @d{i}, @z{i}, @r{i}, @v{i}, @e{i})");
            args.Add(($"t{i}", row.Tenant));
            args.Add(($"c{i}", row.Conversation));
            args.Add(($"s{i}", p.Seq));
            args.Add(($"m{i}", p.MessageId));
            args.Add(($"u{i}", p.Meta.ActorId));
            args.Add(($"y{i}", row.ContentType));
            args.Add(($"x{i}", row.Text));
            args.Add(($"a{i}", p.Meta.OccurredAt.ToUnixTimeMilliseconds()));
            args.Add(($"d{i}", row.EditedAt is { } edited ? edited : new TypedNull(System.Data.DbType.Int64)));
            args.Add(($"z{i}", row.Deleted ? 1 : 0));
            args.Add(($"r{i}", row.Reactions.Count == 0 ? "{}" : JsonSerializer.Serialize(row.Reactions)));
            args.Add(($"v{i}", row.Versions.Count == 0 ? "[]" : JsonSerializer.Serialize(row.Versions, CaasSerializer.Json)));
            args.Add(($"e{i}", !row.HasEnrichment || p.Enrichment is null ? null : JsonSerializer.Serialize(p.Enrichment, CaasSerializer.Json)));
            i++;
        }
        sql.Append(" ON CONFLICT DO NOTHING");
        await using (var insert = Command(c, tx, sql.ToString(), [.. args]))
            await insert.ExecuteNonQueryAsync(ct);
        pending.Clear();
    }

    /// <summary>
    /// SQLite: one prepared single-row INSERT, run per row inside the transaction (no round trips to save, and
    /// SQLite looks each named parameter up by a linear scan, so a 6,500-parameter statement costs quadratic time).
    /// </summary>
    private static async Task InsertMessagesOneByOneAsync(DbConnection c, DbTransaction tx,
        Dictionary<(string Tenant, string Conversation, long Seq), PendingMessage> pending, CancellationToken ct)
    {
        await using var insert = c.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText =
            "INSERT INTO rm_messages (tenant_id, conversation_id, seq, message_id, sender_id, content_type, text, created_at, edited_at, deleted, reactions, versions, enrichment) " +
            "VALUES (@t, @c, @s, @m, @u, @y, @x, @a, @d, @z, @r, @v, @e) ON CONFLICT DO NOTHING";
        var p = new[] { "@t", "@c", "@s", "@m", "@u", "@y", "@x", "@a", "@d", "@z", "@r", "@v", "@e" }.Select(name =>
        {
            var parameter = insert.CreateParameter();
            parameter.ParameterName = name;
            insert.Parameters.Add(parameter);
            return parameter;
        }).ToArray();
        await insert.PrepareAsync(ct);
        foreach (var row in pending.Values)
        {
            var posted = row.Posted;
            p[0].Value = row.Tenant;
            p[1].Value = row.Conversation;
            p[2].Value = posted.Seq;
            p[3].Value = posted.MessageId;
            p[4].Value = posted.Meta.ActorId;
            p[5].Value = (object?)row.ContentType ?? DBNull.Value;
            p[6].Value = (object?)row.Text ?? DBNull.Value;
            p[7].Value = posted.Meta.OccurredAt.ToUnixTimeMilliseconds();
            p[8].Value = row.EditedAt is { } edited ? edited : DBNull.Value;
            p[9].Value = row.Deleted ? 1 : 0;
            p[10].Value = row.Reactions.Count == 0 ? "{}" : JsonSerializer.Serialize(row.Reactions);
            p[11].Value = row.Versions.Count == 0 ? "[]" : JsonSerializer.Serialize(row.Versions, CaasSerializer.Json);
            p[12].Value = !row.HasEnrichment || posted.Enrichment is null ? DBNull.Value : JsonSerializer.Serialize(posted.Enrichment, CaasSerializer.Json);
            await insert.ExecuteNonQueryAsync(ct);
        }
        pending.Clear();
    }

    private static async Task ApplyAsync(DbConnection c, DbTransaction tx, string tenant, string conversation, long offset,
        IConversationEvent e, CancellationToken ct)
    {
        var at = e.Meta.OccurredAt.ToUnixTimeMilliseconds();
        (string Sql, (string, object?)[] Args)[] statements = e switch
        {
            ConversationCreated cc =>
            [
                ("INSERT INTO rm_conversations (tenant_id, conversation_id, type, title, metadata, created_at, created_by, deleted, last_seq) " +
                 "VALUES (@t, @c, @type, @title, '{}', @at, @by, 0, 0) ON CONFLICT DO NOTHING",
                    [("t", tenant), ("c", conversation), ("type", cc.Type), ("title", cc.Title), ("at", at), ("by", cc.Meta.ActorId)]),
                .. cc.Members.Select(m => UpsertMember(tenant, conversation, m.UserId, m.Role, at)),
            ],
            ConversationUpdated u =>
            [
                ("UPDATE rm_conversations SET title = COALESCE(@title, title), metadata = COALESCE(@metadata, metadata) " +
                 "WHERE tenant_id = @t AND conversation_id = @c",
                    [("t", tenant), ("c", conversation), ("title", u.Title),
                     ("metadata", u.Metadata is null ? null : JsonSerializer.Serialize(u.Metadata))]),
            ],
            ConversationDeleted => [("UPDATE rm_conversations SET deleted = 1 WHERE tenant_id = @t AND conversation_id = @c", [("t", tenant), ("c", conversation)])],
            MemberAdded a => [UpsertMember(tenant, conversation, a.UserId, a.Role, at)],
            MemberRemoved r => [RemoveMember(tenant, conversation, r.UserId)],
            MemberRoleChanged rc =>
            [
                ("UPDATE rm_memberships SET role = @role WHERE tenant_id = @t AND conversation_id = @c AND user_id = @u",
                    [("t", tenant), ("c", conversation), ("u", rc.UserId), ("role", rc.Role.ToWire())]),
            ],
            MessageDeleted d =>
            [
                ("UPDATE rm_messages SET deleted = 1, text = NULL, content_type = NULL, versions = '[]', enrichment = NULL WHERE tenant_id = @t AND conversation_id = @c AND seq = @seq",
                    [("t", tenant), ("c", conversation), ("seq", d.Seq)]),
            ],
            UserBanned b => [RemoveMember(tenant, conversation, b.UserId), Log(tenant, conversation, offset, "ban", b.Meta, b.UserId, b.Until, b.Reason)],
            UserKicked k => [RemoveMember(tenant, conversation, k.UserId), Log(tenant, conversation, offset, "kick", k.Meta, k.UserId, k.Until, k.Reason)],
            UserUnbanned ub => [Log(tenant, conversation, offset, "unban", ub.Meta, ub.UserId, null, ub.Reason)],
            UserMuted mu => [Log(tenant, conversation, offset, "mute", mu.Meta, mu.UserId, mu.Until, mu.Reason)],
            UserUnmuted um => [Log(tenant, conversation, offset, "unmute", um.Meta, um.UserId, null, um.Reason)],
            _ => [],
        };
        foreach (var (sql, args) in statements)
        {
            await using var cmd = Command(c, tx, sql, args);
            await cmd.ExecuteNonQueryAsync(ct);
        }

        switch (e)
        {
            case MessageEdited edit:
                await EditAsync(c, tx, tenant, conversation, edit, ct);
                break;
            case ReactionAdded or ReactionRemoved:
                await ReactAsync(c, tx, tenant, conversation, e, ct);
                break;
        }
    }

    private static async Task EditAsync(DbConnection c, DbTransaction tx, string tenant, string conversation, MessageEdited edit, CancellationToken ct)
    {
        // Earlier versions are kept, oldest first, each with the time it stopped being current.
        string? text = null, versions = null;
        await using (var read = Command(c, tx, "SELECT text, versions FROM rm_messages WHERE tenant_id = @t AND conversation_id = @c AND seq = @seq",
                         ("t", tenant), ("c", conversation), ("seq", edit.Seq)))
        await using (var reader = await read.ExecuteReaderAsync(ct))
        {
            if (!await reader.ReadAsync(ct)) return;
            text = reader.IsDBNull(0) ? null : reader.GetString(0);
            versions = reader.GetString(1);
        }
        var list = JsonSerializer.Deserialize<List<MessageVersion>>(versions, CaasSerializer.Json) ?? [];
        // An erased author's history is erased with it (as UserErasure scrubs it): no empty versions are kept.
        if (edit.Content.Type == ContentSealing.Erased.Type) list.Clear();
        else list.Add(new MessageVersion(text, edit.Meta.OccurredAt));
        await using var update = Command(c, tx,
            "UPDATE rm_messages SET text = @text, content_type = @ctype, edited_at = @at, versions = @versions " +
            "WHERE tenant_id = @t AND conversation_id = @c AND seq = @seq",
            ("t", tenant), ("c", conversation), ("seq", edit.Seq), ("text", edit.Content.Text), ("ctype", edit.Content.Type),
            ("at", edit.Meta.OccurredAt.ToUnixTimeMilliseconds()), ("versions", JsonSerializer.Serialize(list, CaasSerializer.Json)));
        await update.ExecuteNonQueryAsync(ct);
    }

    private static async Task ReactAsync(DbConnection c, DbTransaction tx, string tenant, string conversation, IConversationEvent e, CancellationToken ct)
    {
        var seq = SeqOf(e);
        string json;
        await using (var read = Command(c, tx, "SELECT reactions FROM rm_messages WHERE tenant_id = @t AND conversation_id = @c AND seq = @seq",
                         ("t", tenant), ("c", conversation), ("seq", seq)))
        {
            if (await read.ExecuteScalarAsync(ct) is not string s) return;
            json = s;
        }
        var reactions = JsonSerializer.Deserialize<SortedDictionary<string, SortedSet<string>>>(json) ?? new(StringComparer.Ordinal);
        ApplyReaction(reactions, e);
        await using var update = Command(c, tx, "UPDATE rm_messages SET reactions = @r WHERE tenant_id = @t AND conversation_id = @c AND seq = @seq",
            ("t", tenant), ("c", conversation), ("seq", seq), ("r", JsonSerializer.Serialize(reactions)));
        await update.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Adds or removes the actor's reaction: one rule for rows in the database and rows still in a batch.</summary>
    private static void ApplyReaction(SortedDictionary<string, SortedSet<string>> reactions, IConversationEvent e)
    {
        switch (e)
        {
            case ReactionAdded a:
                if (!reactions.TryGetValue(a.Reaction, out var users)) reactions[a.Reaction] = users = new SortedSet<string>(StringComparer.Ordinal);
                users.Add(a.Meta.ActorId);
                break;
            case ReactionRemoved r when reactions.TryGetValue(r.Reaction, out var reactors) && reactors.Remove(r.Meta.ActorId) && reactors.Count == 0:
                reactions.Remove(r.Reaction);
                break;
        }
    }

    private static (string, (string, object?)[]) UpsertMember(string tenant, string conversation, string user, Role role, long at) =>
        ("INSERT INTO rm_memberships (tenant_id, conversation_id, user_id, role, joined_at) VALUES (@t, @c, @u, @role, @at) " +
         "ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET role = excluded.role",
            [("t", tenant), ("c", conversation), ("u", user), ("role", role.ToWire()), ("at", at)]);

    private static (string, (string, object?)[]) RemoveMember(string tenant, string conversation, string user) =>
        ("DELETE FROM rm_memberships WHERE tenant_id = @t AND conversation_id = @c AND user_id = @u",
            [("t", tenant), ("c", conversation), ("u", user)]);

    private static (string, (string, object?)[]) Log(string tenant, string conversation, long offset, string action, EventMeta meta,
        string user, DateTimeOffset? until, string? reason) =>
        ("INSERT INTO rm_moderation_log (tenant_id, conversation_id, journal_offset, action, actor_id, user_id, until_at, reason, occurred_at) " +
         "VALUES (@t, @c, @o, @action, @actor, @u, @until, @reason, @at) ON CONFLICT DO NOTHING",
            [("t", tenant), ("c", conversation), ("o", offset), ("action", action), ("actor", meta.ActorId), ("u", user),
             ("until", until is { } u ? u.ToUnixTimeMilliseconds() : new TypedNull(System.Data.DbType.Int64)), ("reason", reason), ("at", meta.OccurredAt.ToUnixTimeMilliseconds())]);

    internal static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (n, v) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = n;
            switch (v)
            {
                case null:
                    // Untyped NULLs confuse PostgreSQL's type inference (COALESCE(@p, col)); most are text.
                    p.DbType = System.Data.DbType.String;
                    p.Value = DBNull.Value;
                    break;
                case TypedNull t:
                    p.DbType = t.Type;
                    p.Value = DBNull.Value;
                    break;
                default:
                    p.Value = v;
                    break;
            }
            cmd.Parameters.Add(p);
        }
        return cmd;
    }
}

/// <summary>A NULL parameter of a given type.</summary>
internal readonly record struct TypedNull(System.Data.DbType Type);

/// <summary>An earlier version of an edited message: its text and when it was replaced.</summary>
public sealed record MessageVersion(string? Text, DateTimeOffset ReplacedAt);
