using System.Text.Json;
using Caas.Web.Tests.Media;
using SkiaSharp;
using static Caas.Web.Tests.Search.SearchHttp;

namespace Caas.Web.Tests.Search;

public sealed class PostgresFileSearchTests(PostgresSearchNode node) : FileSearchTests(node), IClassFixture<PostgresSearchNode>;

public sealed class SqliteFileSearchTests(SqliteSearchNode node) : FileSearchTests(node), IClassFixture<SqliteSearchNode>;

/// <summary>
/// The <c>files</c> section of <c>GET /v1/search</c> against a real node (its file store, tesseract), the same tests on
/// PostgreSQL full text and SQLite FTS5: files found by name and by the text enrichment took out of them, only for
/// members of the file's conversation in the same tenant, and gone once the file is deleted or its owner erased.
/// </summary>
public abstract class FileSearchTests(SearchNodeFixture node)
{
    private static List<JsonElement> Files(JsonElement body) => body.GetProperty("files").Items();

    private static List<string> FileIds(JsonElement body) => Files(body).Select(f => f.Str("file_id")).ToList();

    /// <summary>A PNG with the text drawn large and black on white (DejaVu Sans, from fonts-dejavu-core).</summary>
    private static byte[] TextImage(string text)
    {
        using var bitmap = new SKBitmap(1400, 220);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var typeface = SKTypeface.FromFile("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
        Assert.NotNull(typeface);
        using var font = new SKFont(typeface, 72);
        using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        canvas.DrawText(text, 40, 140, SKTextAlign.Left, font, paint);
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    /// <summary>Uploads the file into the conversation and sends it as an image message; answers the file's id.</summary>
    private static async Task<string> SendImageAsync(HttpClient c, string conversation, byte[] bytes, string fileName, string messageId,
        string? caption = null)
    {
        var (uploaded, file) = await c.UploadAsync(conversation, bytes, fileName);
        Assert.True(uploaded == 201, file.ToString());
        var id = file.Str("id");
        var (status, ack) = await c.ApiPost("/v1/messages",
            new { conversation_id = conversation, content = new { type = "image", media_id = id, caption }, message_id = messageId });
        Assert.True(status == 201, ack.ToString());
        return id;
    }

    [Fact]
    public async Task A_file_is_found_by_its_name_only_by_members_of_its_tenant_and_has_image_finds_its_message()
    {
        using var alice = node.Client("f-name", "alice");
        using var bob = node.Client("f-name", "bob");
        using var carol = node.Client("f-name", "carol");
        using var stranger = node.Client("f-name-other", "alice");
        var room = await alice.CreateGroupAsync("bob");
        var bytes = MediaHttp.Png(1_200, 41);
        var id = await SendImageAsync(alice, room, bytes, "Walrus_holiday-2026.png", "fn-1");
        await alice.PostMessageAsync(room, "no attachment here", "fn-2");
        // The stranger's own file of the same name, in another tenant.
        var strangerRoom = await stranger.CreateGroupAsync();
        await SendImageAsync(stranger, strangerRoom, MediaHttp.Png(1_000, 42), "walrus.png", "fn-3");

        var body = await bob.SearchUntilAsync("/v1/search?q=walrus", b => FileIds(b).Contains(id));
        var item = Assert.Single(Files(body));
        Assert.Equal(id, item.Str("file_id"));
        Assert.Equal(room, item.Str("conversation_id"));
        Assert.Equal("fn-1", item.Str("message_id"));
        Assert.Equal("Walrus_holiday-2026.png", item.Str("file_name"));
        Assert.Equal("image/png", item.Str("content_type"));
        Assert.Equal(bytes.Length, item.GetProperty("size").GetInt64());
        Assert.True(DateTimeOffset.TryParse(item.Str("created_at"), out _));
        Assert.True(item.TryGetProperty("thumbnail_url", out _));
        var highlight = item.GetProperty("highlights").EnumerateArray().Single(h => h.Str("field") == "file_name");
        Assert.Equal("Walrus_holiday-2026.png", highlight.Str("fragment"));
        var range = Assert.Single(highlight.GetProperty("ranges").EnumerateArray());
        Assert.Equal("Walrus", "Walrus_holiday-2026.png"[range[0].GetInt32()..range[1].GetInt32()]);
        // A word inside the name is found too ("holiday" was joined to it by '_' and '-').
        Assert.Contains(id, FileIds(await bob.SearchUntilAsync("/v1/search?q=holiday", b => FileIds(b).Contains(id))));

        // The caption-less image message is found by has=image (its content type).
        var messages = await bob.SearchUntilAsync("/v1/search/messages?q=walrus&has=image", b => b.Ids().Contains("fn-1"));
        Assert.Equal(["fn-1"], messages.Ids());

        // Not a member: nothing; another tenant: only its own file.
        Assert.Empty(Files((await carol.ApiGet("/v1/search?q=walrus")).Body));
        var foreign = await stranger.SearchUntilAsync("/v1/search?q=walrus", b => Files(b).Count > 0);
        Assert.DoesNotContain(id, FileIds(foreign));
        Assert.Equal(strangerRoom, Assert.Single(Files(foreign)).Str("conversation_id"));
    }

    [Fact]
    public async Task An_image_is_found_by_the_text_OCR_read_in_it()
    {
        using var alice = node.Client("f-ocr", "alice");
        using var bob = node.Client("f-ocr", "bob");
        var room = await alice.CreateGroupAsync("bob");
        var id = await SendImageAsync(alice, room, TextImage("INVOICE 4711 total 25 EUR"), "scan.png", "ocr-1");

        // Enrichment runs off the acknowledgement path, then the search projection indexes what it found: polled.
        var body = await bob.SearchUntilAsync("/v1/search?q=invoice", b => FileIds(b).Contains(id));
        var item = Assert.Single(Files(body));
        Assert.Equal("scan.png", item.Str("file_name"));
        var text = item.GetProperty("highlights").EnumerateArray().Single(h => h.Str("field") == "text");
        var fragment = text.Str("fragment");
        var ranges = text.GetProperty("ranges").EnumerateArray().ToList();
        Assert.NotEmpty(ranges);
        foreach (var r in ranges) Assert.Equal("invoice", fragment[r[0].GetInt32()..r[1].GetInt32()], ignoreCase: true);
        // The file name matched nothing, so it has no highlight.
        Assert.DoesNotContain(item.GetProperty("highlights").EnumerateArray(), h => h.Str("field") == "file_name");
    }

    [Fact]
    public async Task A_deleted_file_and_a_deleted_message_leave_the_results()
    {
        using var alice = node.Client("f-del", "alice");
        var room = await alice.CreateGroupAsync("bob");
        var first = await SendImageAsync(alice, room, MediaHttp.Png(1_000, 51), "narwhal-one.png", "del-1");
        var second = await SendImageAsync(alice, room, MediaHttp.Png(1_000, 52), "narwhal-two.png", "del-2");
        await alice.SearchUntilAsync("/v1/search?q=narwhal", b => FileIds(b).Count == 2);

        Assert.Equal(204, (await alice.ApiDelete($"/v1/media/files/{first}")).Status);
        var body = await alice.SearchUntilAsync("/v1/search?q=narwhal", b => !FileIds(b).Contains(first));
        Assert.Equal([second], FileIds(body));

        Assert.True((await alice.ApiDelete("/v1/messages/del-2")).Status is 200 or 204);
        body = await alice.SearchUntilAsync("/v1/search?q=narwhal", b => FileIds(b).Count == 0);
        Assert.Empty(FileIds(body));
    }

    [Fact]
    public async Task Erasure_removes_the_users_files()
    {
        using var admin = node.Client("f-erase", "root", "admin");
        using var alice = node.Client("f-erase", "alice");
        using var bob = node.Client("f-erase", "bob");
        var room = await alice.CreateGroupAsync("bob");
        var mine = await SendImageAsync(alice, room, MediaHttp.Png(1_000, 61), "okapi-alice.png", "ers-1");
        var his = await SendImageAsync(bob, room, MediaHttp.Png(1_000, 62), "okapi-bob.png", "ers-2");
        await alice.SearchUntilAsync("/v1/search?q=okapi", b => FileIds(b).Count == 2);

        var (status, report) = await admin.ApiDelete("/v1/admin/users/bob");
        Assert.True(status == 200, report.ToString());
        // The index entries go with the erasure itself, not later.
        Assert.Equal([mine], FileIds((await alice.ApiGet("/v1/search?q=okapi")).Body));
        Assert.DoesNotContain(his, FileIds((await alice.ApiGet("/v1/search?q=bob")).Body));
    }
}
