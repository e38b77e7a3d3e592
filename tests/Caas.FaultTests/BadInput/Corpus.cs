using System.Text;
using System.Text.Json;

namespace Caas.FaultTests.BadInput;

/// <summary>Where a bad input goes.</summary>
public enum Channel { Rest, RawHttp, Hub, RawHub, Ndjson, Kafka }

/// <summary>
/// One bad input. <see cref="Body"/> and <see cref="Path"/> may name the world's ids as {room}, {msg}, {seq},
/// {other_room} (another tenant's conversation), {tenant}; <see cref="Token"/> is a token kind (see <see cref="Tokens"/>).
/// </summary>
public sealed record BadCase(string Name, Channel Channel, string Method, string Path, byte[]? Body, string Token = "alice",
    string? ContentType = "application/json", object?[]? HubArgs = null)
{
    public override string ToString() => Name;
}

/// <summary>Token kinds a case may use; the world turns each into a real (or deliberately broken) bearer token.</summary>
public static class Tokens
{
    public const string Alice = "alice";          // owner of {room}
    public const string Bob = "bob";              // member of {room}
    public const string Mallory = "mallory";      // same tenant, not a member
    public const string Eve = "eve";              // another tenant
    public const string Ingest = "ingest";        // ingest role of the corpus tenant
    public const string Admin = "admin";          // admin role of the corpus tenant
    public const string None = "none";

    /// <summary>Broken tokens: each must answer 401 on every route.</summary>
    public static readonly string[] Broken =
    [
        "forged", "expired", "alg-none", "alg-none-no-sig", "alg-hs512", "no-tenant", "no-sub", "tenant-control-char",
        "sub-control-char", "garbage", "empty", "two-dots", "four-parts", "base64-junk", "not-before-future", "huge-claims",
        "json-array-payload", "basic-scheme", "lowercase-bearer-garbage", "bearer-space-only",
    ];
}

/// <summary>The generated corpus: the same few hundred shapes of bad input across every channel.</summary>
public static class Corpus
{
    public static readonly IReadOnlyList<BadCase> All = Build();

    public static BadCase Get(string name) => All.Single(c => c.Name == name);

    private static byte[] U(string s) => Encoding.UTF8.GetBytes(s);

    private static byte[] Cat(params object[] parts)
    {
        var b = new List<byte>();
        foreach (var p in parts) b.AddRange(p is string s ? U(s) : (byte[])p);
        return [.. b];
    }

    private static string J(object o) => JsonSerializer.Serialize(o);

    private static string Nest(int depth, string open, string close, string inner = "1") =>
        string.Concat(Enumerable.Repeat(open, depth)) + inner + string.Concat(Enumerable.Repeat(close, depth));

    /// <summary>Bodies that are broken as JSON or as UTF-8, or the wrong shape for any JSON object body.</summary>
    private static IEnumerable<(string Name, byte[] Body)> GenericBodies()
    {
        string[] syntax =
        [
            "", "{", "}", "[", "{\"a\":", "{'a':1}", "{\"a\":1,}", "{\"a\" 1}", "nul", "tru", "{\"a\":\"unterminated}", "{\"a\":NaN}",
            "{\"a\":Infinity}", "{\"a\":01}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\x41\"}", "/* comment */ {}", "{} {}", "{\"a\":1}}",
            "\u0000", "{\"a\":\"b\"\u0000}", "[1,2", "{\"conversation_id\":\"{room}\",", ":", ",", "{\"\":}",
        ];
        for (var i = 0; i < syntax.Length; i++) yield return ($"malformed-json-{i:D2}", U(syntax[i]));
        string[] shapes = ["null", "123", "\"a string\"", "[]", "[{}]", "true", "-0", "1e999999"];
        for (var i = 0; i < shapes.Length; i++) yield return ($"wrong-top-level-{i}", U(shapes[i]));
        byte[][] utf8 =
        [
            [0xC3, 0x28], [0xFF], [0xFE, 0xFF], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xE2, 0x82], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x80],
        ];
        for (var i = 0; i < utf8.Length; i++) yield return ($"bad-utf8-in-key-{i}", Cat("{\"", utf8[i], "\":1}"));
        yield return ("bad-utf8-bare", [0xFF, 0xFE, 0x00, 0x7B]);
        yield return ("deep-arrays-1000", U(Nest(1000, "[", "]")));
        yield return ("deep-objects-1000", U(Nest(1000, "{\"a\":", "}")));
        yield return ("deep-arrays-100000", U(Nest(100_000, "[", "]")));
    }

    private static List<BadCase> Build()
    {
        var cases = new List<BadCase>();

        // --- REST: every JSON route gets every generic bad body --------------------------------------------------------
        (string Route, string Method, string Path, string Token)[] routes =
        [
            ("post-message", "POST", "/v1/messages", Tokens.Alice),
            ("create-conversation", "POST", "/v1/conversations", Tokens.Alice),
            ("update-conversation", "PUT", "/v1/conversations/{room}", Tokens.Alice),
            ("add-member", "POST", "/v1/conversations/{room}/members", Tokens.Alice),
            ("set-role", "PUT", "/v1/conversations/{room}/members/bob/role", Tokens.Alice),
            ("read-marker", "PUT", "/v1/conversations/{room}/read", Tokens.Alice),
            ("moderation-ban", "POST", "/v1/conversations/{room}/moderation/ban", Tokens.Alice),
            ("edit-message", "PUT", "/v1/messages/{msg}", Tokens.Alice),
            ("react", "POST", "/v1/messages/{msg}/reactions", Tokens.Alice),
            ("tenant-settings", "PUT", "/v1/admin/tenant/settings", Tokens.Admin),
            ("profile", "PUT", "/v1/users/me", Tokens.Alice),
        ];
        foreach (var r in routes)
            foreach (var (name, body) in GenericBodies())
                cases.Add(new BadCase($"rest/{r.Route}/{name}", Channel.Rest, r.Method, r.Path, body, r.Token));

        // --- REST: POST /v1/messages, field by field ---------------------------------------------------------------------
        object?[] wrongValues = [1, true, false, 1.5, -1, new object[] { }, new { }, new[] { "a" }];
        var content = new { type = "text", text = "bad input must not be stored" };
        for (var i = 0; i < wrongValues.Length; i++)
        {
            cases.Add(Msg($"conversation_id-wrong-type-{i}", new Dictionary<string, object?> { ["conversation_id"] = wrongValues[i], ["content"] = content }));
            cases.Add(Msg($"content-wrong-type-{i}", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = wrongValues[i] }));
            cases.Add(Msg($"message_id-wrong-type-{i}", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = content, ["message_id"] = wrongValues[i] }));
            cases.Add(Msg($"content.type-wrong-type-{i}", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new Dictionary<string, object?> { ["type"] = wrongValues[i], ["text"] = "x" } }));
            cases.Add(Msg($"content.text-wrong-type-{i}", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new Dictionary<string, object?> { ["type"] = "text", ["text"] = wrongValues[i] } }));
        }
        cases.Add(Msg("missing-content", new Dictionary<string, object?> { ["conversation_id"] = "{room}" }));
        cases.Add(Msg("missing-conversation", new Dictionary<string, object?> { ["content"] = content }));
        cases.Add(Msg("null-content", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = null }));
        cases.Add(Msg("content-type-image", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "image", text = "x" } }));
        cases.Add(Msg("content-type-empty", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "", text = "x" } }));
        cases.Add(Msg("content-text-missing", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "text" } }));
        cases.Add(Msg("content-text-empty", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "text", text = "" } }));
        cases.Add(Msg("text-4001-chars", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "text", text = new string('x', 4001) } }));
        cases.Add(Msg("text-1MiB", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = new { type = "text", text = new string('y', 1 << 20) } }));
        cases.Add(new BadCase("rest/post-message/body-8MiB-whitespace", Channel.Rest, "POST", "/v1/messages", U(new string(' ', 8 << 20) + "{}")));
        cases.Add(Msg("deep-content-200", null, "{\"conversation_id\":\"{room}\",\"content\":" + Nest(200, "{\"text\":", "}", "\"x\"") + "}"));
        cases.Add(Msg("deep-metadata-5000", null, "{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"x\"},\"metadata\":" + Nest(5000, "[", "]") + "}"));
        cases.Add(Msg("unknown-fields-and-no-content", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["__proto__"] = new { admin = true }, ["sender_id"] = "bob", ["seq"] = 1 }));
        cases.Add(Msg("unknown-fields-wrong-room", new Dictionary<string, object?> { ["conversation_id"] = "no-such-room", ["content"] = content, ["tenant_id"] = "other", ["constructor"] = 1 }));
        cases.Add(Msg("duplicate-keys-bad-last", null, "{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"x\"},\"content\":5}"));
        cases.Add(Msg("invalid-utf8-in-text", null, Cat("{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"a", new byte[] { 0xC3, 0x28 }, "\"}}")));
        cases.Add(Msg("lone-surrogate-escape", null, "{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"\\ud800\"},\"message_id\":\"\\udc00\"}"));

        // Ids: control characters, path characters, overlong; as conversation_id and as message_id.
        string[] badIds =
        [
            "{room}\r", "{room}\t", "{room}\u0000", "\u0000", "a\u0001b", "a\u001bb", "a\u007fb", "a\u2028b", "a\u202eb", "a b", " ", "",
            "../{room}", "{room}/..", "a/b", "a\\b", "%2e%2e", "a|b", "a%00b", "a;b", "a?b", "a#b", "\ud83d\ude00", "é", new string('a', 129),
            new string('a', 100_000), "{room}\u200b",
        ];
        for (var i = 0; i < badIds.Length; i++)
        {
            cases.Add(Msg($"conversation_id-bad-{i:D2}", new Dictionary<string, object?> { ["conversation_id"] = badIds[i], ["content"] = content }));
            cases.Add(Msg($"message_id-bad-{i:D2}", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = content, ["message_id"] = badIds[i] }));
        }
        // Trailing newline: the id pattern's '$' matches before a final '\n' (issue #12: use \z).
        cases.Add(Msg("message_id-trailing-newline", new Dictionary<string, object?> { ["conversation_id"] = "{room}", ["content"] = content, ["message_id"] = "fresh-id\n" }));
        cases.Add(Msg("conversation_id-trailing-newline", new Dictionary<string, object?> { ["conversation_id"] = "{room}\n", ["content"] = content }));

        // Other routes, field by field.
        cases.Add(Rest("moderation-action-list", "POST", "/v1/conversations/{room}/moderation/unban,mute", J(new { user_id = "bob" })));
        cases.Add(Rest("moderation-action-unknown", "POST", "/v1/conversations/{room}/moderation/obliterate", J(new { user_id = "bob" })));
        cases.Add(Rest("moderation-action-number", "POST", "/v1/conversations/{room}/moderation/1", J(new { user_id = "bob" })));
        cases.Add(Rest("moderation-ban-negative-duration", "POST", "/v1/conversations/{room}/moderation/ban", J(new { user_id = "bob", duration_seconds = -5 })));
        cases.Add(Rest("moderation-ban-user-control-char", "POST", "/v1/conversations/{room}/moderation/ban", J(new { user_id = "bob\n" })));
        cases.Add(Rest("moderation-ban-self-owner-wrong-type", "POST", "/v1/conversations/{room}/moderation/ban", J(new { user_id = 7 })));
        cases.Add(Rest("role-unknown", "PUT", "/v1/conversations/{room}/members/bob/role", J(new { role = "emperor" })));
        cases.Add(Rest("role-owner-control-char", "PUT", "/v1/conversations/{room}/members/bob/role", J(new { role = "owner\n" })));
        cases.Add(Rest("read-seq-negative", "PUT", "/v1/conversations/{room}/read", J(new { seq = -1 })));
        cases.Add(Rest("read-seq-huge", "PUT", "/v1/conversations/{room}/read", "{\"seq\":99999999999999999999999}"));
        cases.Add(Rest("add-member-control-char", "POST", "/v1/conversations/{room}/members", J(new { user_id = "carol\r\n" })));
        cases.Add(Rest("add-member-role-unknown", "POST", "/v1/conversations/{room}/members", J(new { user_id = "carol", role = "god" })));
        cases.Add(Rest("create-type-unknown", "POST", "/v1/conversations", J(new { type = "broadcast", title = "x" })));
        cases.Add(Rest("create-members-wrong-type", "POST", "/v1/conversations", J(new { type = "group", title = "x", members = "bob" })));
        cases.Add(Rest("create-member-control-char", "POST", "/v1/conversations", J(new { type = "group", title = "x", members = new[] { "bo\u0000b" } })));
        cases.Add(Rest("create-title-1MiB", "POST", "/v1/conversations", J(new { type = "group", title = new string('t', 1 << 20) })));
        cases.Add(Rest("create-metadata-value-5KiB", "POST", "/v1/conversations", J(new { type = "group", title = "x", metadata = new { k = new string('m', 5 * 1024) } })));
        cases.Add(Rest("react-empty", "POST", "/v1/messages/{msg}/reactions", J(new { reaction = "" })));
        cases.Add(Rest("react-1KiB", "POST", "/v1/messages/{msg}/reactions", J(new { reaction = new string('r', 1024) })));
        cases.Add(Rest("react-wrong-type", "POST", "/v1/messages/{msg}/reactions", J(new { reaction = 1 })));
        cases.Add(Rest("edit-empty-text", "PUT", "/v1/messages/{msg}", J(new { content = new { type = "text", text = "" } })));
        cases.Add(Rest("edit-4001", "PUT", "/v1/messages/{msg}", J(new { content = new { type = "text", text = new string('e', 4001) } })));
        cases.Add(Rest("edit-by-non-author", "PUT", "/v1/messages/{msg}", J(new { content = new { type = "text", text = "mine now" } }), Tokens.Bob));
        cases.Add(Rest("settings-rate-negative", "PUT", "/v1/admin/tenant/settings", J(new { message_rate_per_minute = -1 }), Tokens.Admin));
        cases.Add(Rest("settings-rate-string", "PUT", "/v1/admin/tenant/settings", J(new { message_rate_per_minute = "fast" }), Tokens.Admin));
        cases.Add(Rest("settings-max-chars-zero", "PUT", "/v1/admin/tenant/settings", J(new { max_message_chars = 0 }), Tokens.Admin));
        cases.Add(Rest("settings-region-junk", "PUT", "/v1/admin/tenant/settings", J(new { default_phone_region = "ZZZ\n" }), Tokens.Admin));
        cases.Add(Rest("settings-not-admin", "PUT", "/v1/admin/tenant/settings", J(new { message_rate_per_minute = 1 }), Tokens.Alice));
        cases.Add(Rest("profile-timezone-junk", "PUT", "/v1/users/me", J(new { time_zone = "Mars/Olympus_Mons" })));
        cases.Add(Rest("non-member-posts", "POST", "/v1/messages", J(new { conversation_id = "{room}", content }), Tokens.Mallory));
        cases.Add(Rest("other-tenant-posts", "POST", "/v1/messages", J(new { conversation_id = "{room}", content }), Tokens.Eve));
        cases.Add(Rest("post-to-other-tenant-room", "POST", "/v1/messages", J(new { conversation_id = "{other_room}", content })));
        cases.Add(Rest("non-member-reads", "GET", "/v1/messages/conversations/{room}", null, Tokens.Mallory));
        cases.Add(Rest("other-tenant-reads", "GET", "/v1/messages/conversations/{room}", null, Tokens.Eve));
        cases.Add(Rest("non-member-deletes-message", "DELETE", "/v1/messages/{msg}", null, Tokens.Mallory));
        cases.Add(Rest("member-deletes-conversation", "DELETE", "/v1/conversations/{room}", null, Tokens.Bob));
        cases.Add(Rest("ingest-without-role", "POST", "/v1/ingest", "{}", Tokens.Alice, "application/x-ndjson"));

        // Content types and headers a client gets wrong (bodies that are bad anyway, so nothing may be stored).
        string?[] contentTypes = [null, "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/json; charset=latin1", "*/*", "application/x-www-form-urlencoded"];
        for (var i = 0; i < contentTypes.Length; i++)
            cases.Add(new BadCase($"rest/content-type-{i}", Channel.Rest, "POST", "/v1/messages", U("conversation_id={room}&text=x"), Tokens.Alice, contentTypes[i]));

        // Tokens: every broken token on a read, a write and the hub's negotiate.
        foreach (var t in Tokens.Broken)
        {
            cases.Add(new BadCase($"token/{t}/read", Channel.Rest, "GET", "/v1/messages/conversations/{room}", null, t));
            cases.Add(new BadCase($"token/{t}/write", Channel.Rest, "POST", "/v1/messages", U(J(new { conversation_id = "{room}", content })), t));
            cases.Add(new BadCase($"token/{t}/hub-negotiate", Channel.Rest, "POST", "/hubs/chat/negotiate?negotiateVersion=1", null, t));
        }
        cases.Add(new BadCase("token/none/write", Channel.Rest, "POST", "/v1/messages", U(J(new { conversation_id = "{room}", content })), Tokens.None));
        cases.Add(new BadCase("token/none/hub-negotiate", Channel.Rest, "POST", "/hubs/chat/negotiate?negotiateVersion=1", null, Tokens.None));
        cases.Add(new BadCase("token/query-string-forged", Channel.Rest, "POST", "/hubs/chat/negotiate?negotiateVersion=1&access_token=a.b.c", null, Tokens.None));

        // Path tricks.
        string[] paths =
        [
            "/v1/messages/conversations/..%2f..%2fadmin%2ftenant%2fsettings", "/v1/messages/conversations/%2e%2e", "/v1/messages/conversations/{room}%0a",
            "/v1/messages/conversations/{room}%00", "/v1/messages/conversations/{room}%2f..%2f{other_room}", "/v1/conversations/%7Broom%7D",
            "/v1/conversations/{other_room}", "/v1/messages/conversations/{other_room}", "/v1/conversations/{room}/members/bob%0d%0a/role",
            "/v1/messages/" + new string('a', 5000), "/v1/messages/%ZZ", "/v1/messages/conversations/{room}?limit=-1",
            "/v1/messages/conversations/{room}?limit=999999999999", "/v1/messages/conversations/{room}?cursor=%00%01", "/v1/messages/conversations/{room}?cursor=not-a-cursor",
            "/v1/messages/conversations/{room}?after_seq=-5", "/v1/messages/conversations/{room}?after_seq=abc", "/v1/admin/audit/conversations/{room}/events?from=yesterday",
            "/v1/admin/audit/conversations/{other_room}/events", "/v1/admin/audit/events?type=%00", "/v1/users/bob%00/presence", "/v1/users/..%2f..%2fadmin/presence",
"/v1/messages/{msg}%0a", "/v1/conversations?limit=0", "/v1/conversations?cursor=%FF%FE",
        ];
        for (var i = 0; i < paths.Length; i++)
            cases.Add(new BadCase($"path/{i:D2}", Channel.Rest, "GET", paths[i], null, i is 17 or 18 or 19 ? Tokens.Admin : Tokens.Alice));
        cases.Add(new BadCase("path/delete-other-tenant-room", Channel.Rest, "DELETE", "/v1/conversations/{other_room}", null));
        cases.Add(new BadCase("path/erase-user-not-admin", Channel.Rest, "DELETE", "/v1/admin/users/bob", null));
        cases.Add(new BadCase("path/replay-dead-letter-junk-id", Channel.Rest, "POST", "/v1/admin/dead-letters/%00/replay", null, Tokens.Admin));

        // Raw HTTP/1.1 that no client library would send.
        string[] raw =
        [
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\u0001b\r\n\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n",
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            "GARBAGE\r\n\r\n",
            "GET /v1/users/me HTTP/9.9\r\nHost: x\r\n\r\n",
            "GET /v1/users/me\r\n\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('h', 64 * 1024) + "\r\n\r\n",
            "GET " + "/v1/" + new string('p', 64 * 1024) + " HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\n" + string.Concat(Enumerable.Range(0, 500).Select(i => $"X-H{i}: v\r\n")) + "\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\u0000\r\n\r\n",
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\":",
            "GET /v1/users/me HTTP/1.1\r\nHost: \u0007\r\n\r\n",
            "GET /v1/users/me HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1, \r\n\tcontinued\r\n\r\n",
            "GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        for (var i = 0; i < raw.Length; i++)
            cases.Add(new BadCase($"raw-http/{i:D2}", Channel.RawHttp, "RAW", "", U(raw[i]), Tokens.Alice, null));

        // --- Hub: arguments of every method (the .NET client as a well-formed transport) --------------------------------
        (string Method, object?[] Args)[] hub =
        [
            ("SendMessage", [new { conversation_id = "{room}" }]),
            ("SendMessage", [new { conversation_id = "{room}", content = new { type = "image", text = "x" } }]),
            ("SendMessage", [new { conversation_id = "{room}", content = new { type = "text", text = "" } }]),
            ("SendMessage", [new { conversation_id = "{room}", content = new { type = "text", text = new string('x', 4001) } }]),
            ("SendMessage", [new { conversation_id = "{room}", content = 5 }]),
            ("SendMessage", [new { conversation_id = "{room}", content = new[] { 1 } }]),
            ("SendMessage", [new { conversation_id = "a b", content }]),
            ("SendMessage", [new { conversation_id = "{room}\u0000", content }]),
            ("SendMessage", [new { conversation_id = "../x", content }]),
            ("SendMessage", [new { conversation_id = "{room}", content, message_id = "bad id" }]),
            ("SendMessage", [new { conversation_id = "{room}", content, message_id = "a\u0001" }]),
            ("SendMessage", [new { conversation_id = "{room}", content, message_id = new string('m', 129) }]),
            ("SendMessage", [new { conversation_id = "{other_room}", content }]),
            ("SendMessage", [new { conversation_id = "no-such-room", content }]),
            ("SendMessage", [new { conversation_id = "{room}", content = new { type = "text", text = Nest(40, "[", "]") } , message_id = "" }]),
            ("SendMessage", [new { content }]),
            ("SendMessage", [new { }]),
            ("JoinRoom", [new { conversation_id = "{other_room}" }]),
            ("JoinRoom", [new { conversation_id = "a\nb" }]),
            ("JoinRoom", [new { conversation_id = "" }]),
            ("JoinRoom", [new { }]),
            ("LeaveRoom", [new { conversation_id = "x y" }]),
            ("EditMessage", [new { conversation_id = "{room}", seq = -1, content }]),
            ("EditMessage", [new { conversation_id = "{room}", seq = 999999, content }]),
            ("EditMessage", [new { conversation_id = "{room}", seq = "{seq}", content = new { type = "text", text = "" } }]),
            ("EditMessage", [new { conversation_id = "{room}", seq = "{seq}", content = 3 }]),
            ("DeleteMessage", [new { conversation_id = "{room}", seq = 0 }]),
            ("DeleteMessage", [new { conversation_id = "{room}", seq = 999999 }]),
            ("DeleteMessage", [new { conversation_id = "{other_room}", seq = 1 }]),
            ("React", [new { conversation_id = "{room}", seq = "{seq}", reaction = "" }]),
            ("React", [new { conversation_id = "{room}", seq = "{seq}", reaction = new string('r', 1024) }]),
            ("React", [new { conversation_id = "{room}", seq = 999999, reaction = "ok" }]),
            ("Unreact", [new { conversation_id = "{room}", seq = -3, reaction = "ok" }]),
            ("Typing", [new { conversation_id = "{other_room}" }]),
            ("Typing", [new { conversation_id = "\u0000" }]),
            ("MarkRead", [new { conversation_id = "{room}", seq = -1 }]),
            ("MarkRead", [new { conversation_id = "{other_room}", seq = 1 }]),
            ("MarkDelivered", [new { conversation_id = "{room}", seq = -1 }]),
            ("GetHistory", [new { conversation_id = "{other_room}" }]),
            ("GetHistory", [new { conversation_id = "{room}", limit = -5 }]),
            ("GetHistory", [new { conversation_id = "{room}", cursor = "%%%not-a-cursor" }]),
            ("GetHistory", [new { conversation_id = "{room}", after_seq = -1 }]),
            ("GetPresence", [new { user_id = "a\u0000b" }]),
            ("GetPresence", [new { user_id = "" }]),
        ];
        for (var i = 0; i < hub.Length; i++)
            cases.Add(new BadCase($"hub/{hub[i].Method}-{i:D2}", Channel.Hub, hub[i].Method, "", null, Tokens.Alice, null, hub[i].Args));

        // --- Hub: raw frames on the WebSocket, after a good handshake ---------------------------------------------------
        const char Rs = '\u001e';
        byte[][] frames =
        [
            U("{not json" + Rs),
            Cat(new byte[] { 0xFF, 0xFE, 0xC3, 0x28 }, Rs.ToString()),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[{\"conversation_id\":\"{room}\",\"content\":" + Nest(5000, "[", "]") + "}]}" + Rs),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"NoSuchMethod\",\"arguments\":[]}" + Rs),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[1,2,3]}" + Rs),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":\"x\"}" + Rs),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[{\"conversation_id\":{\"$ne\":1}}]}" + Rs),
            // Not here: {"type":99}. ASP.NET Core's SignalR then ignores every later frame of that connection (no close,
            // no answer): the framework's behaviour, confined to the sender's own connection.
            U("{\"type\":\"1\",\"target\":5}" + Rs),
            U("{\"type\":1,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"" + new string('z', 40 * 1024) + "\"}}]}" + Rs),
            U("{\"type\":4,\"invocationId\":\"1\",\"target\":\"SendMessage\",\"arguments\":[{}]}" + Rs),
            U("[]" + Rs),
            U(Rs.ToString()),
            U("{\"type\":1,\"target\":\"SendMessage\",\"arguments\":[{\"conversation_id\":\"{room}\",\"content\":{\"type\":\"text\",\"text\":\"a\\ud800\"},\"message_id\":\"x\\u0000\"}]}" + Rs),
        ];
        for (var i = 0; i < frames.Length; i++)
            cases.Add(new BadCase($"hub-frame/{i:D2}", Channel.RawHub, "FRAME", "", frames[i], Tokens.Alice, null));

        // --- NDJSON lines (bulk ingest, ingest role): each line on its own request ----------------------------------------
        var lines = new List<(string, byte[])>
        {
            ("missing-sender", U(J(new { conversation_id = "{room}", content }))),
            ("sender-not-member", U(J(new { conversation_id = "{room}", sender_id = "mallory", content }))),
            ("sender-control-char", U(J(new { conversation_id = "{room}", sender_id = "alice\n", content }))),
            ("sender-wrong-type", U(J(new { conversation_id = "{room}", sender_id = 5, content }))),
            ("other-tenant-room", U(J(new { conversation_id = "{other_room}", sender_id = "eve", content }))),
            ("no-such-room", U(J(new { conversation_id = "no-such-room", sender_id = "alice", content }))),
            ("empty-text", U(J(new { conversation_id = "{room}", sender_id = "alice", content = new { type = "text", text = "" } }))),
            ("oversize-text", U(J(new { conversation_id = "{room}", sender_id = "alice", content = new { type = "text", text = new string('n', 4001) } }))),
            ("line-70KiB", U(J(new { conversation_id = "{room}", sender_id = "alice", content = new { type = "text", text = new string('l', 70 * 1024) } }))),
            ("message-id-bad", U(J(new { conversation_id = "{room}", sender_id = "alice", message_id = "a b", content }))),
            ("content-image", U(J(new { conversation_id = "{room}", sender_id = "alice", content = new { type = "image", text = "x" } }))),
        };
        foreach (var (name, body) in GenericBodies().Where(g => g.Body.Length > 0 && !g.Body.Contains((byte)'\n')))
            lines.Add((name, body));
        foreach (var (name, body) in lines)
            cases.Add(new BadCase($"ndjson/{name}", Channel.Ndjson, "POST", "/v1/ingest", body, Tokens.Ingest, "application/x-ndjson"));

        // --- Kafka records on chat.messages: each must be dead-lettered (or refused by the broker), never persisted -------
        var records = new List<(string, byte[])>
        {
            ("missing-tenant", U(J(new { conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content }))),
            ("missing-sender", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", message_id = "k-{marker}", content }))),
            ("missing-message-id", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", content, note = "{marker}" }))),
            ("sender-not-member", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "mallory", message_id = "k-{marker}", content }))),
            ("sender-control-char", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice\u0000", message_id = "k-{marker}", content }))),
            ("message-id-control-char", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}\u0001", content }))),
            ("tenant-control-char", U(J(new { tenant_id = "{tenant}\r", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content }))),
            ("wrong-tenant-room", U(J(new { tenant_id = "{tenant}", conversation_id = "{other_room}", sender_id = "alice", message_id = "k-{marker}", content }))),
            ("empty-text", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content = new { type = "text", text = "" } }))),
            ("oversize-text", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content = new { type = "text", text = new string('o', 5000) } }))),
            ("content-wrong-type", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content = 7 }))),
            ("sender-wrong-type", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = 7, message_id = "k-{marker}", content }))),
            ("unknown-fields-no-content", U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", seq = 1, admin = true }))),
            ("deep-nesting", U("{\"tenant_id\":\"{tenant}\",\"conversation_id\":\"{room}\",\"sender_id\":\"alice\",\"message_id\":\"k-{marker}\",\"content\":" + Nest(3000, "[", "]") + "}")),
            ("bad-utf8", Cat("{\"tenant_id\":\"{tenant}\",\"conversation_id\":\"{room}\",\"sender_id\":\"", new byte[] { 0xC3, 0x28 }, "\",\"message_id\":\"k-{marker}\",\"content\":{\"type\":\"text\",\"text\":\"x\"}}")),
        };
        string[] kafkaSyntax = ["{marker}", "{\"a\":{marker}", "[\"{marker}\"]", "null {marker}", "\"{marker}\"", "{\"tenant_id\":\"{tenant}\",\"x\":\"{marker}\",}"];
        for (var i = 0; i < kafkaSyntax.Length; i++) records.Add(($"malformed-{i}", U(kafkaSyntax[i])));
        records.Add(("binary-garbage", Cat(new byte[] { 0x00, 0xFF, 0xFE, 0x80 }, "{marker}")));
        foreach (var (name, body) in records)
            cases.Add(new BadCase($"kafka/{name}", Channel.Kafka, "PRODUCE", "chat.messages", body, Tokens.None, null));
        cases.Add(new BadCase("kafka/key-not-its-conversation", Channel.Kafka, "PRODUCE", "chat.messages",
            U(J(new { tenant_id = "{tenant}", conversation_id = "{room}", sender_id = "alice", message_id = "k-{marker}", content })), Tokens.None, "other-key"));

        var duplicates = cases.GroupBy(c => c.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0) throw new InvalidOperationException("duplicate case names: " + string.Join(", ", duplicates));
        return cases;

        BadCase Msg(string name, Dictionary<string, object?>? fields, object? raw = null) =>
            new($"rest/post-message/{name}", Channel.Rest, "POST", "/v1/messages", raw switch
            {
                byte[] b => b,
                string s => U(s),
                _ => U(J(fields!)),
            });

        BadCase Rest(string name, string method, string path, string? body, string token = Tokens.Alice, string contentType = "application/json") =>
            new($"rest/{name}", Channel.Rest, method, path, body is null ? null : U(body), token, contentType);
    }
}
