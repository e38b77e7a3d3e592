using Caas.Web.Api;
using Caas.Web.Media;

namespace Caas.Web.Tests.Media;

public sealed class MediaRangeTests
{
    [Theory]
    [InlineData("bytes=0-0", 0L, 1L)]
    [InlineData("bytes=10-19", 10L, 10L)]
    [InlineData("bytes=90-", 90L, 10L)]
    [InlineData("bytes=90-1000", 90L, 10L)]
    [InlineData("bytes=-5", 95L, 5L)]
    [InlineData("bytes=-500", 0L, 100L)]
    [InlineData("bytes=100-", -1L, 0L)]
    [InlineData("bytes=-0", -1L, 0L)]
    public void A_single_range_is_read(string header, long start, long length) => Assert.Equal((start, length), MediaApi.RangeOf(header, 100));

    [Theory]
    [InlineData("")]
    [InlineData("bytes=")]
    [InlineData("bytes=x-1")]
    [InlineData("bytes=5-2")]
    [InlineData("items=1-2")]
    [InlineData("bytes=1-2,4-5")]
    [InlineData("bytes=1")]
    public void Malformed_and_multiple_ranges_are_ignored(string header) => Assert.Null(MediaApi.RangeOf(header, 100));

    [Fact]
    public void File_names_lose_paths_quotes_and_control_characters()
    {
        Assert.Equal("passwd", MediaUploads.CleanName("../../etc/passwd"));
        Assert.Equal("evil.png", MediaUploads.CleanName("C:\\x\\evil.png"));
        Assert.Equal("ab.png", MediaUploads.CleanName("a\"b\r\n.png"));
        Assert.Equal("file", MediaUploads.CleanName(""));
        Assert.Equal(255, MediaUploads.CleanName(new string('a', 300)).Length);
    }
}
