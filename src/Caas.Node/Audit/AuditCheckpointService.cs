using Caas.Streams.Audit;

namespace Caas.Node.Audit;

/// <summary>
/// Signs audit checkpoints (<see cref="AuditCheckpoints"/>) on a node with the projections role: once at start (an
/// existing journal's genesis checkpoint) and then every <c>CAAS_AUDIT_CHECKPOINT_SECONDS</c> (default 30). A failed
/// run (database down, another node's run won the race) is logged and retried at the next tick.
/// </summary>
public sealed class AuditCheckpointService(AuditCheckpoints checkpoints, NodeOptions options, ILogger<AuditCheckpointService> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var signed = await checkpoints.RunAsync(stoppingToken);
                if (signed > 0) logger.LogDebug("Signed {Count} audit checkpoints", signed);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Audit checkpoint run failed; retrying in {Interval}", options.AuditCheckpointInterval);
            }
            try
            {
                await Task.Delay(options.AuditCheckpointInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
