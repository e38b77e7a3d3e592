using System.Security.Cryptography;
using Caas.Actors.Hosting;
using Caas.Web.Auth;

namespace Caas.Node;

/// <summary>
/// What a node is told by its environment (and the command line): where data lives, where it listens, which
/// cluster it joins, which roles it plays, how tokens are checked.
/// </summary>
public sealed record NodeOptions
{
    public const string RoleApi = "api";
    public const string RoleEntities = "entities";
    public const string RoleProjections = "projections";

    public string DataDir { get; init; } = "./data";
    public string? Postgres { get; init; }
    public string Urls { get; init; } = "http://127.0.0.1:5080";
    public IReadOnlyList<string> SeedNodes { get; init; } = [];
    public string[] Roles { get; init; } = [RoleApi, RoleEntities, RoleProjections];
    public string? JwtSecret { get; init; }
    public string? JwtPublicKey { get; init; }
    /// <summary>Accepted besides the current secret / public key while a rotation is under way.</summary>
    public string? JwtSecretPrevious { get; init; }
    public string? JwtPublicKeyPrevious { get; init; }
    public string? JwtIssuer { get; init; }
    public string? JwtAudience { get; init; }
    /// <summary>Base64 of the 32-byte key that wraps the per-user data keys (CAAS_MASTER_KEY); see <see cref="ContentMasterKey"/>.</summary>
    public string? MasterKey { get; init; }
    /// <summary>Base64 of the 32-byte key of the hash-chain links and audit checkpoints (CAAS_AUDIT_KEY); unset, derived from the master key.</summary>
    public string? AuditKeyBase64 { get; init; }
    /// <summary>How often audit checkpoints are signed (CAAS_AUDIT_CHECKPOINT_SECONDS, default 30).</summary>
    public TimeSpan AuditCheckpointInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Extra HOCON, highest precedence (tests set ports and timings with it).</summary>
    public string? ExtraHocon { get; init; }
    public string LogLevel { get; init; } = "Information";
    /// <summary>Run the enrichers in the pipeline (CAAS_ENRICHMENT=off turns them off).</summary>
    public bool Enrichment { get; init; } = true;
    /// <summary>Run each text enricher once on a sample when the node starts (<see cref="Caas.Enrichment.EnricherWarmUp"/>; CAAS_ENRICH_WARMUP=0 turns it off).</summary>
    public bool WarmUpEnrichers { get; init; } = true;
    /// <summary>
    /// Train the shipped intent model in the background on first start when none is saved under {data}/models
    /// (CAAS_INTENT_AUTOTRAIN=0 turns it off; the default is read when the options are made).
    /// </summary>
    public bool IntentAutotrain { get; init; } = Caas.Enrichment.EnrichmentOptions.AutotrainFromEnvironment();
    /// <summary>Where the shipped models live (CAAS_MODEL_DIR, default {data}/models).</summary>
    public string? ModelDir { get; init; }
    /// <summary>Per-client request limits; null reads <c>Caas:RequestLimits</c> from configuration.</summary>
    public Caas.Web.RequestLimits? RequestLimits { get; init; }
    /// <summary>Per-user search budgets (60 searches a minute by default).</summary>
    public Caas.Web.Api.SearchLimits? SearchLimits { get; init; }

    public static NodeOptions FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        var o = new NodeOptions();
        return o with
        {
            DataDir = env("CAAS_DATA_DIR") is { Length: > 0 } d ? d : o.DataDir,
            Postgres = env("CAAS_POSTGRES") is { Length: > 0 } p ? p : null,
            Urls = env("ASPNETCORE_URLS") is { Length: > 0 } u ? u : o.Urls,
            SeedNodes = Split(env("CAAS_SEED_NODES")),
            Roles = Split(env("CAAS_ROLES")) is { Count: > 0 } r ? [.. r] : o.Roles,
            JwtSecret = env("CAAS_JWT_SECRET") is { Length: > 0 } s ? s : null,
            JwtPublicKey = env("CAAS_JWT_PUBLIC_KEY") is { Length: > 0 } k ? k : null,
            JwtSecretPrevious = env("CAAS_JWT_SECRET_PREVIOUS") is { Length: > 0 } sp ? sp : null,
            JwtPublicKeyPrevious = env("CAAS_JWT_PUBLIC_KEY_PREVIOUS") is { Length: > 0 } kp ? kp : null,
            JwtIssuer = env("CAAS_JWT_ISSUER") is { Length: > 0 } i ? i : null,
            JwtAudience = env("CAAS_JWT_AUDIENCE") is { Length: > 0 } a ? a : null,
            MasterKey = env("CAAS_MASTER_KEY") is { Length: > 0 } mk ? mk : null,
            AuditKeyBase64 = env("CAAS_AUDIT_KEY") is { Length: > 0 } ak ? ak : null,
            AuditCheckpointInterval = int.TryParse(env("CAAS_AUDIT_CHECKPOINT_SECONDS"), out var cps) && cps > 0 ? TimeSpan.FromSeconds(cps) : o.AuditCheckpointInterval,
            LogLevel = env("CAAS_LOG_LEVEL") is { Length: > 0 } l ? l : o.LogLevel,
            Enrichment = !string.Equals(env("CAAS_ENRICHMENT"), "off", StringComparison.OrdinalIgnoreCase),
            IntentAutotrain = env("CAAS_INTENT_AUTOTRAIN") is not ("0" or "false" or "off"),
            WarmUpEnrichers = env("CAAS_ENRICH_WARMUP") is not ("0" or "false" or "off"),
            ModelDir = env("CAAS_MODEL_DIR") is { Length: > 0 } md ? md : null,
        };
    }

    /// <summary>The enrichers' settings for this node: its model directory and autotraining; data beside the binaries.</summary>
    public Caas.Enrichment.EnrichmentOptions EnrichmentSettings() => Caas.Enrichment.EnrichmentOptions.FromEnvironment() with
    {
        ModelDirectory = ModelDir ?? Path.Combine(DataDir, "models"),
        AutotrainIntent = IntentAutotrain,
        TrainMissingModels = false,
    };

    public StorageOptions Storage() => Postgres is not null ? StorageOptions.Postgres(Postgres) : StorageOptions.Sqlite(DataDir);

    public bool Has(string role) => Roles.Contains(role, StringComparer.Ordinal);

    /// <summary>
    /// The token settings. With neither a secret nor a public key configured, a development secret is generated once
    /// and kept at <c>{data}/jwt-secret</c>, so tokens from <c>caas dev-token</c> keep working across restarts.
    /// </summary>
    public JwtSettings Jwt()
    {
        if (JwtSecret is not null || JwtPublicKey is not null)
            return new JwtSettings(JwtSecret, JwtPublicKey, JwtIssuer, JwtAudience, JwtSecretPrevious, JwtPublicKeyPrevious);
        var secret = SecretFile.ReadOrCreate(Path.Combine(DataDir, "jwt-secret"), () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)));
        return new JwtSettings(secret, null, JwtIssuer, JwtAudience, JwtSecretPrevious, JwtPublicKeyPrevious);
    }

    /// <summary>
    /// The master key of the content vault. Unset, one is generated once and kept at <c>{data}/master-key</c> (owner
    /// read/write only): right for the embedded single node; a cluster's nodes must all be given the same CAAS_MASTER_KEY.
    /// </summary>
    public Caas.Streams.Privacy.MasterKey ContentMasterKey()
    {
        if (MasterKey is not null) return Caas.Streams.Privacy.MasterKey.FromBase64(MasterKey);
        return Caas.Streams.Privacy.MasterKey.FromBase64(
            SecretFile.ReadOrCreate(Path.Combine(DataDir, "master-key"), () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))));
    }

    /// <summary>The key of the hash chain and the audit checkpoints: CAAS_AUDIT_KEY, or derived from the content master key.</summary>
    public Caas.Actors.Common.AuditKey AuditKey() =>
        AuditKeyBase64 is not null ? Caas.Actors.Common.AuditKey.FromBase64(AuditKeyBase64) : Caas.Actors.Common.AuditKey.FromMasterKey(ContentMasterKey().Key);

    private static IReadOnlyList<string> Split(string? value) =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
