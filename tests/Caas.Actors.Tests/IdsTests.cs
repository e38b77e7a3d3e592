using Caas.Actors.Common;

namespace Caas.Actors.Tests;

public sealed class IdsTests
{
    [Theory]
    [InlineData("alice")]
    [InlineData("c_0199a1b2c3d4e5f6")]
    [InlineData("user.name@example-1_x")]
    public void Safe_ids_are_valid(string id) => Assert.True(Ids.IsValid(id));

    [Theory]
    // '$' matches before a final newline; the pattern must end at the end of the string
    [InlineData("alice\n")]
    [InlineData("alice\r\n")]
    [InlineData("\nalice")]
    [InlineData("ali\nce")]
    [InlineData("alice ")]
    [InlineData("alice|bob")]
    [InlineData("")]
    public void Ids_with_control_characters_or_separators_are_invalid(string id) => Assert.False(Ids.IsValid(id));

    [Fact]
    public void At_most_128_characters_even_with_a_trailing_newline()
    {
        Assert.True(Ids.IsValid(new string('a', 128)));
        Assert.False(Ids.IsValid(new string('a', 129)));
        Assert.False(Ids.IsValid(new string('a', 128) + "\n"));
    }
}

public sealed class OrderedIdsTests
{
    [Fact]
    public void Ids_made_in_one_millisecond_sort_in_the_order_they_were_made_and_are_uuid7()
    {
        var at = new DateTimeOffset(2026, 12, 6, 3, 30, 0, TimeSpan.Zero);
        // 5,000 in the same millisecond (more than the 4,096 its counter holds), then one from a clock that went back.
        var generator = new OrderedIds();
        var ids = Enumerable.Range(0, 5_000).Select(_ => generator.Next(at)).ToList();
        ids.Add(generator.Next(at.AddSeconds(-5)));

        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var id in ids.Take(3))
        {
            var guid = Guid.ParseExact(id, "N");
            Assert.Equal(7, guid.Version);
            Assert.Equal(id, guid.ToString("N"));
        }
        // The time part is the millisecond's (the first 12 hex digits), as Guid.CreateVersion7 writes it.
        Assert.Equal(Guid.CreateVersion7(at).ToString("N")[..12], ids[0][..12]);
    }
}
