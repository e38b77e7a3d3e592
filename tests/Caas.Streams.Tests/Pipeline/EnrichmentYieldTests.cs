using Caas.Streams.Pipeline;
using Xunit;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// Deferred enrichment leaves the cores to a burst: before each batch the projection waits while this node's graph is
/// above its high-water mark, never longer than its limit, and not at all otherwise.
/// </summary>
public sealed class EnrichmentYieldTests
{
    [Fact]
    public async Task A_batch_waits_while_the_graph_bursts_and_goes_as_soon_as_the_burst_ends()
    {
        var bursting = true;
        var waiting = EnrichmentProjection.YieldAsync(() => Volatile.Read(ref bursting), TimeSpan.FromHours(1));
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);
        Volatile.Write(ref bursting, false);
        var waited = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(waited >= TimeSpan.FromMilliseconds(300), $"waited {waited}");
    }

    [Fact]
    public async Task A_burst_that_does_not_end_holds_a_batch_back_no_longer_than_the_limit()
    {
        var waited = await EnrichmentProjection.YieldAsync(() => true, TimeSpan.FromMilliseconds(200)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(waited >= TimeSpan.FromMilliseconds(200), $"waited {waited}");
    }

    [Fact]
    public async Task Without_a_burst_a_batch_does_not_wait()
    {
        Assert.Equal(TimeSpan.Zero, await EnrichmentProjection.YieldAsync(() => false, TimeSpan.FromHours(1)));
    }

    [Theory]
    [InlineData("caas.pipeline.enrich-high-water = 1000", 1001, true)]
    [InlineData("caas.pipeline.enrich-high-water = 1000", 1000, false)]
    // Every message deferred (high-water 0) is a choice, not a burst: the projection never waits then.
    [InlineData("caas.pipeline.enrich-high-water = 0", 5000, false)]
    public void A_burst_is_a_graph_above_a_positive_high_water_mark(string hocon, int inGraph, bool bursting)
    {
        var settings = PipelineSettings.From(Akka.Configuration.ConfigurationFactory.ParseString(hocon));
        Assert.Equal(bursting, PipelineStages.IsBursting(settings, inGraph));
        Assert.Equal(TimeSpan.FromSeconds(2), settings.EnrichYieldMax);
    }
}
