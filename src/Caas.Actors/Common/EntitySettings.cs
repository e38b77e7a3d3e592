using Akka.Configuration;

namespace Caas.Actors.Common;

/// <summary>Settings shared by the persistent entities, read from HOCON (<c>caas.entities</c>).</summary>
/// <param name="MaxWriteBatch">At most this many commands are decided and written together in one journal write.</param>
public sealed record EntitySettings(int SnapshotEvery, TimeSpan PassivateAfter, int MessageWindow, TimeSpan OfflineGrace,
    int MaxWriteBatch = 1_000)
{
    public static EntitySettings Default { get; } = new(1_000, TimeSpan.FromMinutes(2), 10_000, TimeSpan.FromSeconds(5));

    public static EntitySettings From(Config config)
    {
        var c = config.GetConfig("caas.entities");
        if (c is null || c.IsEmpty) return Default;
        return new EntitySettings(
            c.GetInt("snapshot-every", Default.SnapshotEvery),
            c.GetTimeSpan("passivate-after", Default.PassivateAfter),
            c.GetInt("message-window", Default.MessageWindow),
            c.GetTimeSpan("offline-grace", Default.OfflineGrace),
            Math.Max(1, c.GetInt("max-write-batch", Default.MaxWriteBatch)));
    }
}
