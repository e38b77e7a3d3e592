using System.Runtime.CompilerServices;

namespace Caas.Tests.Shared;

/// <summary>
/// Process-wide settings every test node gets before any test runs: no background training of the shipped intent
/// model (a minute of CPU per node on a shared machine). Child processes (the CLI tests) inherit it. The one test that
/// proves autotraining sets <c>NodeOptions.IntentAutotrain</c> itself.
/// </summary>
internal static class TestEnvironment
{
#pragma warning disable CA2255 // a test assembly's process-wide setup is what a module initializer is for
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize() => Environment.SetEnvironmentVariable("CAAS_INTENT_AUTOTRAIN", "0");
}
