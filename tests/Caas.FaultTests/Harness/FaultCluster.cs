using System.Globalization;
using System.Text;
using Caas.Web.Auth;
using Xunit.Abstractions;

namespace Caas.FaultTests.Harness;

/// <summary>
/// Three CAAS nodes as separate OS processes forming one cluster on the suite's own PostgreSQL and Kafka, shared by
/// the scenarios of the collection (each scenario uses its own tenant). The failure detector is tuned for a loaded
/// 2-core machine (<see cref="HeartbeatPause"/>), so only the faults a scenario injects down a node.
/// </summary>
public sealed class FaultCluster : IAsyncLifetime
{
    public const string Secret = "fault-suite-secret-fault-suite-secret-0123456789";
    public const int Size = 3;

    /// <summary>
    /// akka.cluster.failure-detector.acceptable-heartbeat-pause (CAAS_HEARTBEAT_PAUSE): 3 s by default; with three nodes,
    /// PostgreSQL, Kafka and the load on 2 shared cores, a GC or scheduling stall can exceed that, so 8 s here.
    /// </summary>
    public const string HeartbeatPause = "8s";

    /// <summary>The split-brain resolver's stable-after (CAAS_SBR_STABLE_AFTER): 15 s by default, 7 s here to keep the freeze scenario short.</summary>
    public const string SbrStableAfter = "7s";

    private readonly StringWriter _log = new();
    private string _database = "";
    private string? _dataRoot;

    public static readonly JwtSettings Jwt = new(Secret, null, null, null);
    public static readonly string MasterKey = Convert.ToBase64String(Enumerable.Range(1, 32).Select(i => (byte)(i * 7)).ToArray());

    public FaultServices Services { get; private set; } = null!;
    public string Database => _database;
    public List<NodeProcess> Nodes { get; } = [];
    public ChaosSettings Settings { get; } = ChaosSettings.FromEnvironment();

    public async Task InitializeAsync()
    {
        Services = await FaultServices.StartAsync(_log);
        await Services.MakeDurableAsync();
        _database = await Services.NewDatabaseAsync("caas_fault");
        var dataRoot = _dataRoot = Directory.CreateTempSubdirectory("caas-fault-nodes.").FullName;
        for (var i = 0; i < Size; i++)
        {
            var index = i;
            Nodes.Add(new NodeProcess(i, restart => Environment(index, restart, Path.Combine(dataRoot, $"node{index}")), _log));
        }
        // The first seed starts the cluster; the others join it. The bounds only catch a node that never comes up: a
        // start usually takes seconds, but on 2 cores shared with another busy process one took over 3 minutes.
        Nodes[0].Start();
        await WaitReadyAsync(Nodes[0], StartBound);
        foreach (var n in Nodes.Skip(1)) n.Start();
        await AllReadyAsync(StartBound);
    }

    /// <summary>
    /// The seed list: on the very first start node 0 lists itself first (it forms the cluster); every other start lists
    /// the other nodes first, so a restarted node joins the running cluster and never forms an island of its own.
    /// </summary>
    private IDictionary<string, string> Environment(int index, bool restart, string dataDir)
    {
        var seeds = index == 0 && !restart
            ? Nodes.Select(n => n.AkkaAddress)
            : Nodes.Where(n => n.Index != index).Select(n => n.AkkaAddress).Append(Nodes[index].AkkaAddress);
        return new Dictionary<string, string>
        {
            ["CAAS_POSTGRES"] = _database,
            ["CAAS_SEED_NODES"] = string.Join(",", seeds),
            ["CAAS_REMOTE_HOSTNAME"] = "127.0.0.1",
            ["CAAS_DATA_DIR"] = dataDir,
            ["CAAS_JWT_SECRET"] = Secret,
            ["CAAS_MASTER_KEY"] = MasterKey,
            ["CAAS_LOG_LEVEL"] = "Warning",
            // The enrichers cost CPU that the faults do not need; the pipeline's other stages all run.
            ["CAAS_ENRICHMENT"] = "off",
            ["CAAS_INTENT_AUTOTRAIN"] = "0",
            ["CAAS_KAFKA_BOOTSTRAP"] = Services.Kafka,
            ["CAAS_KAFKA_PROFILE"] = "0.9",
            ["CAAS_HEARTBEAT_PAUSE"] = HeartbeatPause,
            ["CAAS_SBR_STABLE_AFTER"] = SbrStableAfter,
            // All load comes from 127.0.0.1: the per-client HTTP limit would otherwise throttle the harness itself.
            ["Caas__RequestLimits__PermitsPerSecond"] = "5000",
            ["Caas__RequestLimits__Burst"] = "5000",
        };
    }

    private static readonly TimeSpan StartBound = TimeSpan.FromMinutes(8);

    public async Task WaitReadyAsync(NodeProcess node, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await node.ReadyAsync())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"node{node.Index} not ready within {within}; its log:\n{node.Tail()}\nharness:\n{Log()}");
            await Task.Delay(500);
        }
    }

    public async Task AllReadyAsync(TimeSpan within)
    {
        foreach (var n in Nodes) await WaitReadyAsync(n, within);
    }

    public string Log()
    {
        lock (_log) return _log.ToString();
    }

    public void Note(string what)
    {
        lock (_log) _log.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {what}");
        // CAAS_CHAOS_LOG: a file that follows the harness's notes while a long run is in progress.
        if (System.Environment.GetEnvironmentVariable("CAAS_CHAOS_LOG") is { Length: > 0 } file)
            lock (_log) File.AppendAllText(file, $"{DateTime.UtcNow:HH:mm:ss.fff} {what}\n");
    }

    public void Dump(ITestOutputHelper output)
    {
        output.WriteLine(Log());
        foreach (var n in Nodes) output.WriteLine($"--- node{n.Index} (starts {n.Starts}, exits [{string.Join(",", n.ExitCodes)}]) tail:\n{n.Tail()}");
    }

    public async Task DisposeAsync()
    {
        foreach (var n in Nodes)
            try
            {
                await n.DisposeAsync();
            }
            catch (Exception e)
            {
                Note($"node{n.Index} dispose: {e.Message}");
            }
        if (Services is not null) await Services.DisposeAsync();
        if (_dataRoot is not null) Directory.Delete(_dataRoot, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class FaultCollection : ICollectionFixture<FaultCluster>
{
    public const string Name = "fault cluster";
}

/// <summary>
/// How long and how hard a scenario runs: the CI form by default; <c>scripts/chaos.sh</c> sets the longer form
/// (CAAS_CHAOS_SECONDS, CAAS_CHAOS_RATE, CAAS_CHAOS_FAULTS) and CAAS_CHAOS_REPORT (a file each scenario appends its
/// table row to).
/// </summary>
public sealed record ChaosSettings(TimeSpan LoadBefore, TimeSpan LoadAfter, double Rate, int Faults, string? Report)
{
    public static ChaosSettings FromEnvironment()
    {
        var seconds = Number("CAAS_CHAOS_SECONDS", 0, 1, 3600);
        var rate = Number("CAAS_CHAOS_RATE", 24, 1, 200);
        var faults = (int)Number("CAAS_CHAOS_FAULTS", 1, 1, 20);
        // CI form: 8 s of load before the first fault and 12 s after the last.
        var before = seconds > 0 ? TimeSpan.FromSeconds(Math.Max(5, seconds / 4)) : TimeSpan.FromSeconds(8);
        var after = seconds > 0 ? TimeSpan.FromSeconds(Math.Max(10, seconds / 2)) : TimeSpan.FromSeconds(12);
        return new ChaosSettings(before, after, rate, faults,
            System.Environment.GetEnvironmentVariable("CAAS_CHAOS_REPORT") is { Length: > 0 } r ? r : null);
    }

    private static double Number(string name, double fallback, double min, double max) =>
        double.TryParse(System.Environment.GetEnvironmentVariable(name), NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            ? Math.Clamp(v, min, max)
            : fallback;
}
