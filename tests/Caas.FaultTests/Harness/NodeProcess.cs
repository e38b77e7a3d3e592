using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Caas.FaultTests.Harness;

/// <summary>
/// One CAAS node as its own OS process (<c>dotnet caas.dll run</c>), supervised: whenever it exits (killed, or downed
/// by the cluster and shut down) it is started again on the same ports, as a service manager would, until the
/// supervision is stopped. Every start and exit is recorded.
/// </summary>
public sealed class NodeProcess : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly Func<bool, IDictionary<string, string>> _environment;
    private readonly TextWriter _log;
    private readonly object _gate = new();
    private readonly StringBuilder _tail = new();
    private readonly CancellationTokenSource _stop = new();
    private Process? _process;
    private Task _supervisor = Task.CompletedTask;

    /// <param name="environment">the child's CAAS_* variables; its argument is true for a restart (the node then joins the running cluster)</param>
    public NodeProcess(int index, Func<bool, IDictionary<string, string>> environment, TextWriter log)
    {
        Index = index;
        HttpPort = FreeTcpPort();
        RemotePort = FreeTcpPort();
        _environment = environment;
        _log = log;
    }

    public int Index { get; }
    public int HttpPort { get; }
    public int RemotePort { get; }
    public Uri Url => new($"http://127.0.0.1:{HttpPort}");
    public string AkkaAddress => $"akka.tcp://caas@127.0.0.1:{RemotePort}";
    public int Pid { get { lock (_gate) return _process?.Id ?? 0; } }
    public List<int> ExitCodes { get; } = [];
    public int Starts { get; private set; }

    /// <summary>Starts the node and keeps it running until disposed.</summary>
    public void Start()
    {
        Launch(restart: false);
        _supervisor = Task.Run(SuperviseAsync);
    }

    private async Task SuperviseAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Process p;
            lock (_gate) p = _process!;
            try
            {
                await p.WaitForExitAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            lock (_gate) ExitCodes.Add(p.ExitCode);
            Log($"exited with {p.ExitCode}; restarting");
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            Launch(restart: true);
        }
    }

    private void Launch(bool restart)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Repo.CaasDll);
        start.ArgumentList.Add("run");
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add(Url.ToString().TrimEnd('/'));
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CAAS_", StringComparison.Ordinal) || k == "ASPNETCORE_URLS").ToList())
            start.Environment.Remove(name);
        foreach (var (k, v) in _environment(restart)) start.Environment[k] = v;
        start.Environment["CAAS_REMOTE_PORT"] = RemotePort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var p = new Process { StartInfo = start };
        p.OutputDataReceived += (_, e) => Keep(e.Data);
        p.ErrorDataReceived += (_, e) => Keep(e.Data);
        p.Start();
        File.WriteAllText(FaultServices.PidFile(Index), p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        lock (_gate)
        {
            _process?.Dispose();
            _process = p;
            Starts++;
        }
        Log($"started pid {p.Id} (http {HttpPort}, remote {RemotePort}){(restart ? " again" : "")}");
    }

    /// <summary>Whether the node answers /health/ready with 200 (cluster member up, stores reachable).</summary>
    public async Task<bool> ReadyAsync()
    {
        try
        {
            using var r = await Http.GetAsync(new Uri(Url, "/health/ready"));
            return r.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    public void Kill9() => Signals.Send(Pid, Signals.Kill);

    public void Freeze() => Signals.Send(Pid, Signals.Stop);

    public void Thaw() => Signals.Send(Pid, Signals.Cont);

    /// <summary>The last lines the node wrote (for failure messages).</summary>
    public string Tail()
    {
        lock (_tail) return _tail.ToString();
    }

    /// <summary>The lines that mention the split-brain resolver or downing (kept whole, whatever the tail drops).</summary>
    public List<string> DowningLines { get; } = [];

    private void Keep(string? line)
    {
        if (line is null) return;
        if (line.Contains("SBR", StringComparison.Ordinal) || line.Contains("owning", StringComparison.Ordinal))
            lock (DowningLines) DowningLines.Add(line.Length > 1000 ? line[..1000] : line);
        lock (_tail)
        {
            _tail.AppendLine(line.Length > 400 ? line[..400] : line);
            if (_tail.Length > 20_000) _tail.Remove(0, _tail.Length - 15_000);
        }
    }

    private void Log(string what)
    {
        lock (_log) _log.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} node{Index}: {what}");
        if (Environment.GetEnvironmentVariable("CAAS_CHAOS_LOG") is { Length: > 0 } file)
            lock (_log) File.AppendAllText(file, $"{DateTime.UtcNow:HH:mm:ss.fff} node{Index}: {what}\n");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _supervisor;
        Process? p;
        lock (_gate) p = _process;
        if (p is null) return;
        if (!p.HasExited)
        {
            Signals.Send(p.Id, Signals.Cont);
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        File.Delete(FaultServices.PidFile(Index));
        p.Dispose();
    }

    /// <summary>A port for a node to listen on, outside the ephemeral range (see <see cref="Caas.Tests.Shared.TestPorts"/>).</summary>
    public static int FreeTcpPort() => Caas.Tests.Shared.TestPorts.Free();
}
