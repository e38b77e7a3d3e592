using System.Diagnostics;
using Caas.Streams.Pipeline;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>The expected-wait estimate on a clock the test moves (no sleeping, so no timing in the outcome).</summary>
public sealed class IngestWaitEstimateTests
{
    private long _now = 1_000_000;
    private static readonly long Quarter = Stopwatch.Frequency / 4;

    private void Answer(IngestWaitEstimate estimate, int perQuarterSecond, int quarters)
    {
        for (var q = 0; q < quarters; q++)
        {
            for (var i = 0; i < perQuarterSecond; i++) estimate.Answered();
            _now += Quarter;
        }
    }

    [Fact]
    public void The_wait_is_the_messages_inside_over_the_recent_answer_rate()
    {
        var estimate = new IngestWaitEstimate(() => _now);
        Answer(estimate, 100, 8); // 400 answers a second for 2 s
        Assert.Equal(400, estimate.AnsweredPerSecond(), 1);
        Assert.Equal(TimeSpan.FromSeconds(2.5), estimate.ExpectedWait(1_000, 256));
        Assert.Null(estimate.ExpectedWait(255, 256)); // too few inside to call the graph backed up
    }

    [Fact]
    public void Only_the_last_two_seconds_count_and_a_stalled_graph_is_as_backed_up_as_it_gets()
    {
        var estimate = new IngestWaitEstimate(() => _now);
        Answer(estimate, 1_000, 8);
        Answer(estimate, 10, 8); // the rate fell: the old buckets are forgotten
        Assert.Equal(40, estimate.AnsweredPerSecond(), 1);
        Assert.Equal(TimeSpan.FromSeconds(25), estimate.ExpectedWait(1_000, 256));
        _now += Quarter * 9; // nothing answered for 2.25 s
        Assert.Equal(0, estimate.AnsweredPerSecond());
        Assert.Equal(TimeSpan.MaxValue, estimate.ExpectedWait(1_000, 256));
    }
}
