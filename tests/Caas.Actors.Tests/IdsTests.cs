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
