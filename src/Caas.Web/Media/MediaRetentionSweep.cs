using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Caas.Web.Media;

/// <summary>
/// Purges deleted files whose tenant's retention ran out, every <see cref="MediaSettings.RetentionSweepEvery"/>, in
/// batches of 100 (README: Media, retention). Runs on every node: a purge is recorded once by the file's entity and
/// purging again removes nothing more, so nodes racing for a file do no harm.
/// </summary>
public sealed class MediaRetentionSweep(MediaUploads uploads, MediaSettings settings, ILogger<MediaRetentionSweep> log) : BackgroundService
{
    private const int Batch = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.RetentionSweepEvery);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                // A full batch means more may be due: go on at once, the next tick otherwise.
                while (await uploads.PurgeDueAsync(Batch, stoppingToken) == Batch && !stoppingToken.IsCancellationRequested) { }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                log.LogWarning(e, "The media retention sweep failed; it runs again in {Every}.", settings.RetentionSweepEvery);
            }
        }
    }
}
