using Caas.Streams.Media;

namespace Caas.Streams.Tests.Media;

public sealed class ContentSnifferTests
{
    private static byte[] Head(params byte[] magic) => [.. magic, .. new byte[64]];

    [Theory]
    [InlineData("89504E470D0A1A0A", "image/png")]
    [InlineData("FFD8FFE0", "image/jpeg")]
    [InlineData("474946383961", "image/gif")]
    [InlineData("255044462D312E37", "application/pdf")]
    [InlineData("4F676753", "audio/ogg")]
    [InlineData("494433", "audio/mpeg")]
    [InlineData("1A45DFA3", "video/webm")]
    [InlineData("7F454C46", ContentSniffer.Executable)]
    [InlineData("4D5A9000", ContentSniffer.Executable)]
    [InlineData("CFFAEDFE", ContentSniffer.Executable)]
    [InlineData("2321", ContentSniffer.Executable)]
    public void Magic_numbers_name_the_type(string hex, string expected) => Assert.Equal(expected, ContentSniffer.Sniff(Head(Convert.FromHexString(hex))));

    [Fact]
    public void Containers_text_and_pages_are_told_apart()
    {
        Assert.Equal("audio/wav", ContentSniffer.Sniff("RIFF\0\0\0\0WAVEfmt "u8));
        Assert.Equal("image/webp", ContentSniffer.Sniff("RIFF\0\0\0\0WEBPVP8 "u8));
        Assert.Equal("video/mp4", ContentSniffer.Sniff([0, 0, 0, 0x18, .. "ftypisom\0\0\0\0"u8]));
        Assert.Equal("audio/mp4", ContentSniffer.Sniff([0, 0, 0, 0x18, .. "ftypM4A \0\0\0\0"u8]));
        Assert.Equal(ContentSniffer.Docx, ContentSniffer.Sniff([0x50, 0x4B, 0x03, 0x04, 0x14, 0, 0, 0, 0, 0, .. "[Content_Types].xml"u8]));
        Assert.Equal("text/plain", ContentSniffer.Sniff("hello, wörld\n"u8));
        Assert.Equal("image/svg+xml", ContentSniffer.Sniff("<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\">"u8));
        Assert.Equal("text/html", ContentSniffer.Sniff("  <!DOCTYPE html><html>"u8));
        Assert.Equal(ContentSniffer.OctetStream, ContentSniffer.Sniff([0, 1, 2, 3, 0xFE]));
        Assert.Equal(ContentSniffer.OctetStream, ContentSniffer.Sniff([]));
    }

    [Fact]
    public void A_declared_type_must_fit_the_bytes()
    {
        Assert.True(ContentSniffer.Matches("image/png", "image/png"));
        Assert.True(ContentSniffer.Matches("IMAGE/PNG; charset=x", "image/png"));
        Assert.True(ContentSniffer.Matches(null, "image/png"));
        Assert.True(ContentSniffer.Matches("application/octet-stream", "application/pdf"));
        Assert.True(ContentSniffer.Matches("audio/mp4", "video/mp4"));
        Assert.True(ContentSniffer.Matches("audio/opus", "audio/ogg"));
        Assert.True(ContentSniffer.Matches("image/jpg", "image/jpeg"));
        Assert.False(ContentSniffer.Matches("image/png", "application/pdf"));
        Assert.False(ContentSniffer.Matches("image/png", ContentSniffer.Executable));
        Assert.False(ContentSniffer.Matches("text/plain", "text/html"));
    }

    [Fact]
    public void The_allowlist_takes_families_and_never_executables()
    {
        string[] allow = ["image/*", "application/pdf"];
        Assert.True(ContentSniffer.Allowed("image/png", allow));
        Assert.True(ContentSniffer.Allowed("application/pdf", allow));
        Assert.False(ContentSniffer.Allowed("video/mp4", allow));
        Assert.False(ContentSniffer.Allowed(ContentSniffer.Executable, ["*/*", "application/*", ContentSniffer.Executable]));
    }
}
