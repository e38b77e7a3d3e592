using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Caas.Streams.Media;

/// <summary>
/// Aborts expired upload sessions in the store (their multipart parts go with them, so nothing is orphaned) and
/// forgets them. Every node sweeps; an abort is idempotent, so two nodes sweeping the same session is harmless.
/// </summary>
public sealed class UploadSweep(IUploadSessions sessions, IMediaStore store, ILogger<UploadSweep> logger, TimeSpan? every = null) : BackgroundService
{
    public TimeSpan Every { get; } = every ?? TimeSpan.FromSeconds(30);

    /// <summary>One pass; returns how many sessions it aborted.</summary>
    public async Task<int> SweepOnceAsync(CancellationToken ct = default)
    {
        var aborted = 0;
        foreach (var s in await sessions.ExpiredAsync(DateTimeOffset.UtcNow, 500, ct))
        {
            await store.AbortMultipartAsync(s.TenantId, s.FileId, s.MultipartId, ct);
            await sessions.DeleteAsync(s.TenantId, s.UploadId, ct);
            aborted++;
        }
        if (aborted > 0) logger.LogInformation("Aborted {Count} expired upload sessions", aborted);
        return aborted;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Every);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SweepOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("The upload sweep failed (next in {Every}): {Error}", Every, e.Message);
            }
        }
    }
}
