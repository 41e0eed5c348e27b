using Cluster.Contracts.Configuration;

namespace Cluster.Contracts.Tests;

/// <summary>The edit distance behind the command line's "Did you mean" (its messages are tested on the commands).</summary>
public sealed class ParseErrorsTests
{
    [Theory]
    [InlineData("", "", 0)]
    [InlineData("--seed", "--seed", 0)]
    [InlineData("--sed", "--seed", 1)]
    [InlineData("--thread", "--threads", 1)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("abc", "", 3)]
    [InlineData("flaw", "lawn", 2)]
    public void Distance_IsTheLeastNumberOfSingleCharacterEdits(string a, string b, int expected)
    {
        Assert.Equal(expected, ParseErrors.Distance(a, b));
        Assert.Equal(expected, ParseErrors.Distance(b, a));
    }
}
