using Caas.Actors.Hosting;

namespace Caas.Actors.Tests;

/// <summary><c>caas.journal.writer</c> picks the journal plugin; a host that names a plugin itself still wins.</summary>
public sealed class JournalWriterConfigTests
{
    private static readonly StorageOptions Storage = new(false, "Data Source=unused.db", "Data Source=unused-rm.db");

    private static string Plugin(string extra) => CaasConfig.Compose(Storage, extra).GetString("akka.persistence.journal.plugin");

    [Fact]
    public void The_caas_writer_is_the_default() => Assert.Equal("akka.persistence.journal.caas", Plugin(""));

    [Fact]
    public void The_plugin_writer_can_be_chosen() => Assert.Equal("akka.persistence.journal.sql", Plugin("caas.journal.writer = plugin"));

    [Fact]
    public void A_plugin_named_explicitly_wins() =>
        Assert.Equal("akka.persistence.journal.inmem", Plugin("akka.persistence.journal.plugin = \"akka.persistence.journal.inmem\""));

    [Fact]
    public void An_unknown_writer_is_refused() => Assert.Throws<InvalidOperationException>(() => Plugin("caas.journal.writer = other"));

    [Fact]
    public void Both_writers_get_the_connection_string()
    {
        var config = CaasConfig.Compose(Storage);
        Assert.Equal("Data Source=unused.db", config.GetString("akka.persistence.journal.caas.connection-string"));
        Assert.Equal("Data Source=unused.db", config.GetString("akka.persistence.journal.sql.connection-string"));
    }
}
