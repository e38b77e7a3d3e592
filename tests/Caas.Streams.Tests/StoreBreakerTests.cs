using System.Net.Sockets;
using Caas.Streams.ReadModel;

namespace Caas.Streams.Tests;

/// <summary>
/// The store breaker's states, driven by real failed and successful opens (a refused socket, a completed task): no
/// clock is faked, the break is short and the test only waits past it, never races it.
/// </summary>
public sealed class StoreBreakerTests
{
    private static Task<int> Refused(CancellationToken _) => Task.FromException<int>(new SocketException((int)SocketError.ConnectionRefused));

    [Fact]
    public async Task After_the_break_the_breaker_is_half_open_but_still_down_until_a_probe_succeeds()
    {
        var breaker = new StoreBreaker(new StoreBreakerSettings { BreakDuration = TimeSpan.FromMilliseconds(50), FailuresToOpen = 2 });
        Assert.False(breaker.IsDown);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => breaker.OpenAsync(Refused, CancellationToken.None));
        Assert.False(breaker.IsDown); // one failure is not an outage yet
        await Assert.ThrowsAsync<StoreUnavailableException>(() => breaker.OpenAsync(Refused, CancellationToken.None));
        Assert.True(breaker.IsDown);

        await Task.Delay(TimeSpan.FromMilliseconds(200)); // past the break: waiting longer can only keep it half-open
        Assert.False(breaker.IsOpen); // a probe may go through now...
        Assert.True(breaker.IsDown); // ...but nothing has shown the database is back

        Assert.Equal(7, await breaker.OpenAsync(_ => Task.FromResult(7), CancellationToken.None));
        Assert.False(breaker.IsDown);
        Assert.False(breaker.IsOpen);
    }

    [Fact]
    public async Task A_failed_probe_keeps_it_down_and_open_again()
    {
        var breaker = new StoreBreaker(new StoreBreakerSettings { BreakDuration = TimeSpan.FromMinutes(10), FailuresToOpen = 1 });
        await Assert.ThrowsAsync<StoreUnavailableException>(() => breaker.OpenAsync(Refused, CancellationToken.None));
        Assert.True(breaker.IsOpen);
        Assert.True(breaker.IsDown);
        // While open, calls fail at once without trying the database.
        var tried = false;
        await Assert.ThrowsAsync<StoreUnavailableException>(() => breaker.OpenAsync(_ => { tried = true; return Task.FromResult(1); }, CancellationToken.None));
        Assert.False(tried);
    }
}
