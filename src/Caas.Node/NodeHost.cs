using Akka.Actor;
using Akka.Streams;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Actors.Sessions;
using Caas.Streams.DeadLetters;
using Caas.Streams.Kafka;
using Caas.Streams.Operational;
using Caas.Streams.Privacy;
using Caas.Streams.Pipeline;
using Caas.Streams.ReadModel;
using Caas.Web;
using Caas.Web.Api;
using Caas.Web.Edge;
using Caas.Web.Hubs;
using Caas.Web.Media;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace Caas.Node;

/// <summary>Registry key of the read-model projection singleton.</summary>
public sealed class ReadModelProjection;

/// <summary>Registry key of the deferred-enrichment projection singleton.</summary>
public sealed class EnrichmentProjectionKey
{
    public const string Path = "enrichment-projection";
}
/// <summary>Registry key of the media projection singleton.</summary>
public sealed class MediaProjectionKey;

/// <summary>Composes a node: storage, the Akka cluster with its shard regions and projection, and the web edge.</summary>
public static class NodeHost
{
    public const string SystemName = "caas";

    public static async Task<WebApplication> BuildAsync(NodeOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        var storage = options.Storage();
        var store = new ReadModelStore(storage);
        await ReadModelStore.EnableWalAsync(storage);
        await JournalTagsMigration.RunAsync(storage);
        await store.EnsureSchemaAsync();
        var searchIndex = new Caas.Streams.Search.SearchIndex(store);
        await searchIndex.EnsureSchemaAsync();
        var profileIndex = new Caas.Streams.Search.ProfileIndex(store);
        await profileIndex.EnsureSchemaAsync();
        var recordings = new Caas.Streams.Calls.RecordingReadModel(store);
        await recordings.EnsureSchemaAsync();
        // Keys, claims, dead letters: migrated (one node at a time) before anything reads them.
        var operational = new OperationalStore(storage, store.Breaker);
        await operational.MigrateAsync();
        var vault = new ContentVault(operational, options.ContentMasterKey());
        await vault.CheckMasterKeyAsync();
        var auditKey = options.AuditKey();

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls(options.Urls);
        var edge = builder.Configuration.GetSection("Caas:Edge").Get<EdgeSettings>() ?? new EdgeSettings();
        var limits = options.RequestLimits ?? builder.Configuration.GetSection("Caas:RequestLimits").Get<RequestLimits>() ?? new RequestLimits();
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = edge.MaxRequestBodyBytes);
        builder.Services.AddSerilog(lc => lc
            .MinimumLevel.Is(Enum.TryParse<LogEventLevel>(options.LogLevel, true, out var level) ? level : LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .Enrich.FromLogContext()
            .WriteTo.Console(new CompactJsonFormatter()));
        CachedLoggerFactory.CacheLoggers(builder.Services);

        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton(operational);
        builder.Services.AddSingleton(new ProjectionProgress(store));
        builder.Services.AddSingleton<ReadModelWriter>();
        builder.Services.AddSingleton<ReadModelQueries>();
        builder.Services.AddSingleton<DeadLetterStore>();
        builder.Services.AddSingleton(vault);
        builder.Services.AddSingleton(sp => new UserErasure(vault, store, operational, sp.GetRequiredService<ReadModelWriter>(), storage,
            sp.GetRequiredService<ActorSystem>(), () => sp.GetRequiredService<IRequiredActor<UserSessionRegion>>().ActorRef)
        {
            Search = searchIndex,
            RecentSearches = sp.GetRequiredService<Caas.Streams.Search.RecentSearches>(),
        });
        builder.Services.AddSingleton(searchIndex);
        builder.Services.AddSingleton(recordings);
        builder.Services.AddCaasSearch(options.SearchLimits);
        // The entity recogniser needs no trained model, so every node runs it; intent (tenant or shipped model) and
        // sentiment (lexicon) come from AddCaasIntents, which never trains in the foreground.
        if (options.Enrichment) builder.Services.AddSingleton<Caas.Enrichment.IEnricher, Caas.Enrichment.EntityEnricher>();
        builder.Services.AddCaasIntents(builder.Configuration.GetSection("Caas:Intents").Get<IntentApiSettings>(), options.Enrichment,
            options.EnrichmentSettings());
        builder.Services.AddSingleton(sp => new JournalTail(sp.GetRequiredService<ActorSystem>()));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(storage);
        builder.Services.AddSingleton(sp => new Caas.Streams.Audit.ProjectionRebuilds(sp.GetRequiredService<ActorSystem>(), "/user/read-model-projection",
            "read-model-projection", NodeOptions.RoleProjections, storage, sp.GetRequiredService<ReadModelWriter>()));
        builder.Services.AddSingleton(sp => BuildPipelineStages(sp, operational));
        builder.Services.AddSingleton<IMessageIngest>(sp => BuildMessageGraph(sp));
        builder.Services.AddCaasWeb(options.Jwt(), edge, limits);
        builder.Services.AddAkka(SystemName, (akka, sp) =>
        {
            akka.AddHocon(CaasConfig.Compose(storage, ClusterHocon(options)), HoconAddMode.Prepend);
            // Entities seal message content with it; the serializer opens it when events are read back.
            akka.AddSetup(new ContentVaultSetup(vault));
            // Entities link their hash chains with it (keyed links); the checkpoints are signed with it too.
            akka.AddSetup(new AuditKeySetup(auditKey));
            // Akka's own log lines go through Microsoft.Extensions.Logging, so they are JSON like the rest.
            akka.ConfigureLoggers(setup =>
            {
                setup.ClearLoggers();
                setup.AddLoggerFactory();
            });
            var entitiesRole = NodeOptions.RoleEntities;
            // Late-commit repair of the tag projections without marks of their own: PostgreSQL only (SQLite's one journal
            // writer commits in ordering order, so the tag stream never passes a row by).
            TagRepair? Repair(string prefix) => storage.IsPostgres ? new TagRepair(store, prefix, ct => JournalDb.OpenAsync(storage, ct)) : null;
            akka.AddConversationSharding(entitiesRole)
                .AddUserSessionSharding(entitiesRole)
                .AddTenantSettingsSharding(entitiesRole)
                .AddCallRoomSharding(entitiesRole)
                .AddMediaSharding(entitiesRole)
                .WithSingleton<MediaProjectionKey>("media-projection",
                    (system, _, _) => MediaProjection.PropsFor(sp.GetRequiredService<MediaReadModel>(), ProjectionSettings.From(system.Settings.Config),
                        Repair("media|")),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: false)
                .WithSingleton<ReadModelProjection>("read-model-projection",
                    (system, _, _) => ConversationProjection.PropsFor(sp.GetRequiredService<ReadModelWriter>(),
                        ProjectionSettings.From(system.Settings.Config), storage.IsPostgres ? ct => JournalDb.OpenAsync(storage, ct) : null),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: false)
                // Deferred enrichment: enriches the messages stored above the pipeline's high-water mark, in journal order.
                .WithSingleton<EnrichmentProjectionKey>(EnrichmentProjectionKey.Path,
                    (system, registry, _) => EnrichmentProjection.PropsFor(
                        (tenant, conversation, sender, content, at) =>
                            sp.GetRequiredService<PipelineStages>().EnrichLaterAsync(tenant, conversation, sender, content, at),
                        registry.Get<ConversationRegion>(), new ProjectionOffsetStore(store), ProjectionSettings.From(system.Settings.Config),
                        PipelineSettings.From(system.Settings.Config).AskTimeout, Environment.ProcessorCount,
                        storage.IsPostgres ? ct => JournalDb.OpenAsync(storage, ct) : null,
                        () => sp.GetRequiredService<PipelineStages>().Bursting, PipelineSettings.From(system.Settings.Config).EnrichYieldMax),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: false)
                .WithSingleton<Caas.Streams.Search.SearchProjectionKey>("search-projection",
                    (system, _, _) => Caas.Streams.Search.SearchProjection.PropsFor(searchIndex, ProjectionSettings.From(system.Settings.Config), storage,
                        storage.IsPostgres ? ct => JournalDb.OpenAsync(storage, ct) : null),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: true)
                // Display names from profiles, for the people search.
                .WithSingleton<Caas.Streams.Search.ProfileProjectionKey>("search-profiles-projection",
                    (system, _, _) => Caas.Streams.Search.ProfileProjection.PropsFor(profileIndex, ProjectionSettings.From(system.Settings.Config),
                        Repair("user-session|")),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: true)
                // Each tenant's search language (default_language), from the tenant events.
                .WithSingleton<Caas.Streams.Search.SearchLanguageProjectionKey>("search-languages-projection",
                    (system, _, _) => Caas.Streams.Search.SearchLanguageProjection.PropsFor(searchIndex.Languages, ProjectionSettings.From(system.Settings.Config),
                        Repair("tenant|")),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: false)
                // Call recordings (issue #16), from the call entities' events.
                .WithSingleton<Caas.Streams.Calls.RecordingProjectionKey>("recordings-projection",
                    (system, _, _) => Caas.Streams.Calls.RecordingProjection.PropsFor(recordings, ProjectionSettings.From(system.Settings.Config), Repair("calls|")),
                    new ClusterSingletonOptions { Role = NodeOptions.RoleProjections }, createProxyToo: false)
                .WithActors((system, _) =>
                {
                    system.ActorOf(DataKeyEvictions.PropsFor(vault), "data-key-evictions");
                    system.ActorOf(CallNoticeDelivery.PropsFor(sp.GetRequiredService<ChatConnections>()), "call-notices");
                    // A node without seeds is a cluster of one: the embedded default.
                    if (options.SeedNodes.Count == 0) Cluster.Get(system).Join(Cluster.Get(system).SelfAddress);
                });
        });
        builder.Services.AddHostedService<ClusterReadiness>();
        builder.Services.AddSingleton(auditKey);
        builder.Services.AddSingleton(new Caas.Streams.Audit.AuditCheckpoints(storage, auditKey));
        if (options.Has(NodeOptions.RoleProjections))
        {
            builder.Services.AddHostedService<Caas.Node.Audit.AuditCheckpointService>();
            builder.Services.AddHostedService<ProjectionLagSampler>();
        }
        builder.Services.AddCaasHub();
        // Media: the store, upload sessions, quotas, signed links (README: Media); a test host replaces the settings.
        builder.Services.AddCaasMedia(Caas.Web.Media.MediaSettings.FromEnvironment(options.JwtSecret), options.DataDir);
        if (Caas.Streams.Kafka.KafkaSettings.FromEnvironment() is { } kafka) Caas.Streams.Kafka.KafkaHostingExtensions.AddKafkaIngest(builder.Services, kafka);
        builder.Services.AddHostedService<Caas.Streams.Calls.RecordingEventsOutbound>(); // webrtc.recording.events, when Kafka is on
        configure?.Invoke(builder);

        var app = builder.Build();
        vault.Logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<ContentVault>();
        var storeLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Store");
        store.Breaker.Log = message => storeLog.LogWarning("{Message}", message);
        await app.Services.PrepareMediaAsync();
        app.UseCaasWeb(ct => HealthAsync(app.Services, storage, store, ct));
        app.MapCaasHub();
        if (options.WarmUpEnrichers) WarmEnrichersOnStart(app);
        return app;
    }

    /// <summary>
    /// Once the node is up, each text enricher runs once on a sample (<see cref="Caas.Enrichment.EnricherWarmUp"/>), in the
    /// background, so the first real message is not the one that pays for their first use and goes past the enrich budget.
    /// </summary>
    private static void WarmEnrichersOnStart(WebApplication app)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Enrichment");
        app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(async () =>
        {
            try
            {
                foreach (var w in await Caas.Enrichment.EnricherWarmUp.RunAsync(app.Services.GetServices<Caas.Enrichment.IEnricher>(),
                             app.Lifetime.ApplicationStopping))
                {
                    if (w.Error is null) log.LogInformation("Enricher {Enricher} warmed up in {Milliseconds:0} ms", w.Enricher, w.Took.TotalMilliseconds);
                    else log.LogWarning("Enricher {Enricher} failed its warm-up ({Error}); the first messages may go on without it", w.Enricher, w.Error);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }));
    }

    /// <summary>The message graph, materialized once the actor system runs; every ingest source submits to it.</summary>
    private static MessageGraph BuildMessageGraph(IServiceProvider sp)
    {
        var system = sp.GetRequiredService<ActorSystem>();
        return new MessageGraph(sp.GetRequiredService<PipelineStages>(), PipelineSettings.From(system.Settings.Config), system.Materializer());
    }

    /// <summary>The graph's stages (shared with the enrichment projection, which enriches deferred messages with them).</summary>
    private static PipelineStages BuildPipelineStages(IServiceProvider sp, OperationalStore operational)
    {
        var system = sp.GetRequiredService<ActorSystem>();
        var settings = PipelineSettings.From(system.Settings.Config);
        var gateway = sp.GetRequiredService<ClusterGateway>();
        var sessions = sp.GetRequiredService<IRequiredActor<UserSessionRegion>>().ActorRef;
        var stages = new PipelineStages(
            sp.GetRequiredService<IRequiredActor<ConversationRegion>>().ActorRef,
            sessions,
            gateway.TenantSettingsAsync,
            new MessageIdClaims(operational),
            sp.GetRequiredService<ReadModelQueries>(),
            new EnrichStage(sp.GetServices<Caas.Enrichment.IEnricher>(), settings),
            DedupeWindow.Of(system),
            settings,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Caas.Pipeline"))
        {
            Rates = new RateLeases(system, sessions, RateLeaseSettings.From(system.Settings.Config), settings.AskTimeout),
            // Messages with attachments (README: Media): the file's entity, and upload sessions for an upload's id.
            Attachments = new AttachmentResolver(sp.GetRequiredService<IRequiredActor<MediaRegion>>().ActorRef,
                sp.GetService<IUploadSessions>(), settings.AskTimeout),
            // Attachment enrichment (README: Enrichment): the media store's bytes to OCR, document text and speech.
            AttachmentEnrichers = NodeAttachmentEnrichers.Create(sp, settings),
            // Content sealed in the graph, before the entity (the entities' own vault, so both seal alike).
            Vault = Caas.Actors.Privacy.ContentVaultSetup.Of(system),
        };
        return stages;
    }

    private static string ClusterHocon(NodeOptions o)
    {
        var seeds = string.Join(", ", o.SeedNodes.Select(CaasConfig.Quote));
        var roles = string.Join(", ", o.Roles.Select(CaasConfig.Quote));
        return $"""
            akka.cluster.seed-nodes = [{seeds}]
            akka.cluster.roles = [{roles}]
            {o.ExtraHocon}
            """;
    }

    private static async Task<IReadOnlyDictionary<string, string>> HealthAsync(IServiceProvider services, StorageOptions storage,
        ReadModelStore store, CancellationToken ct)
    {
        var checks = new Dictionary<string, string> { ["read_model"] = await CaasWeb.CheckAsync(store, ct) };
        checks["journal"] = storage.IsPostgres ? checks["read_model"] : await SqliteJournalAsync(storage, ct);
        var system = services.GetRequiredService<ActorSystem>();
        var self = Cluster.Get(system).SelfMember;
        checks["cluster"] = self.Status == MemberStatus.Up ? "up" : self.Status.ToString().ToLowerInvariant();
        return checks;
    }

    private static async Task<string> SqliteJournalAsync(StorageOptions storage, CancellationToken ct)
    {
        try
        {
            await using var c = new Microsoft.Data.Sqlite.SqliteConnection(storage.JournalConnectionString);
            await c.OpenAsync(ct);
            return "ok";
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return "down: " + e.GetType().Name;
        }
    }
}
