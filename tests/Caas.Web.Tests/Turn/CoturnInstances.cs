using System.Diagnostics;

namespace Caas.Web.Tests.Turn;

/// <summary>
/// The two coturn instances scripts/test.sh starts (CAAS_TEST_TURN_*): their URIs, shared secret and realm, and
/// stopping or starting one (its start.sh/stop.sh wait until it is up or gone).
/// </summary>
public static class CoturnInstances
{
    private static string Env(string name) => Environment.GetEnvironmentVariable(name)
        ?? throw new InvalidOperationException($"{name} is not set. Run the tests through ./scripts/test.sh, which starts two coturn instances.");

    public static string[] Servers => Env("CAAS_TEST_TURN_SERVERS").Split(',');

    public static string Secret => Env("CAAS_TEST_TURN_SECRET");

    public static string Realm => Env("CAAS_TEST_TURN_REALM");

    /// <summary>The UDP/TCP port of instance 1 or 2.</summary>
    public static int Port(int n) => int.Parse(Env($"CAAS_TEST_TURN_{n}_PORT"), System.Globalization.CultureInfo.InvariantCulture);

    public static Task StopAsync(int n) => RunAsync(Path.Combine(Env("CAAS_TEST_TURN_HOME"), n.ToString(System.Globalization.CultureInfo.InvariantCulture), "stop.sh"));

    public static Task StartAsync(int n) => RunAsync(Path.Combine(Env("CAAS_TEST_TURN_HOME"), n.ToString(System.Globalization.CultureInfo.InvariantCulture), "start.sh"));

    /// <summary>turnutils_uclient allocating on instance <paramref name="n"/> with a credential: its exit code (0: allocated).</summary>
    public static async Task<int> UclientAsync(int n, string username, string credential)
    {
        var (code, _) = await ExecAsync("turnutils_uclient", "-p", Port(n).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-y", "-c", "-n", "1", "-u", username, "-w", credential, "127.0.0.1");
        return code;
    }

    private static async Task RunAsync(string script)
    {
        var (code, output) = await ExecAsync("bash", script);
        if (code != 0) throw new InvalidOperationException($"{script} exited {code}: {output}");
    }

    private static async Task<(int Code, string Output)> ExecAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within 2 minutes");
        }
        return (p.ExitCode, await stdout + await stderr);
    }

    /// <summary>Polls until <paramref name="condition"/> holds; a bound no loaded machine reaches, never a timed assertion.</summary>
    public static async Task<T> EventuallyAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, string what, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromMinutes(2));
        T last;
        while (true)
        {
            last = await probe();
            if (condition(last)) return last;
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"Still not {what} after the wait; last: {last}");
            await Task.Delay(200);
        }
    }
}

/// <summary>Tests that use (and stop and start) the shared coturn instances run one at a time.</summary>
[CollectionDefinition("coturn", DisableParallelization = true)]
public sealed class CoturnCollection;
