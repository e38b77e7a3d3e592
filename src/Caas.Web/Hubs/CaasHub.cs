using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Caas.Web.Hubs;

/// <summary>The real-time gateway: the chat hub at <c>/hubs/chat</c>, its room relay, and the browser console at <c>/console</c>.</summary>
public static class CaasHub
{
    public const string Path = "/hubs/chat";
    public const string ConfigSection = "Caas:Hub";

    public static IServiceCollection AddCaasHub(this IServiceCollection services)
    {
        services.AddOptions<HubSettings>().BindConfiguration(ConfigSection);
        services.AddSingleton<ChatConnections>();
        services.AddSingleton<RoomRelay>();
        services.AddSingleton<HubCallLimiter>();
        services.AddSingleton<HubLifetimeManager<ChatHub>, ChatLifetimeManager>();
        // JSON and MessagePack, with one payload shape (HubWire); a client picks one in its handshake.
        services.AddSignalR()
            .AddJsonProtocol(o => HubWire.Configure(o.PayloadSerializerOptions))
            .AddMessagePackProtocol(o => o.SerializerOptions = HubWire.MessagePack);
        services.AddOptions<HubOptions<ChatHub>>().Configure<IOptions<HubSettings>>((o, s) =>
        {
            o.MaximumReceiveMessageSize = s.Value.MaxMessageBytes;
            o.MaximumParallelInvocationsPerClient = s.Value.MaxParallelInvocations;
            o.HandshakeTimeout = s.Value.HandshakeTimeout;
            o.KeepAliveInterval = s.Value.KeepAliveInterval;
            o.ClientTimeoutInterval = s.Value.ClientTimeout;
            o.EnableDetailedErrors = false;
        });
        return services;
    }

    public static WebApplication MapCaasHub(this WebApplication app)
    {
        app.MapHub<ChatHub>(Path, o =>
        {
            o.Transports = HttpTransportType.WebSockets | HttpTransportType.LongPolling;
            // Small socket buffers: thousands of idle connections must stay cheap.
            o.TransportMaxBufferSize = 32 * 1024;
            o.ApplicationMaxBufferSize = 32 * 1024;
        }).RequireAuthorization();
        // The relay subscribes to pub-sub topics, so it starts once the actor system is up.
        app.Lifetime.ApplicationStarted.Register(() => app.Services.GetRequiredService<RoomRelay>().Start());

        var console = System.IO.Path.Combine(AppContext.BaseDirectory, "console");
        if (Directory.Exists(console))
        {
            var files = new PhysicalFileProvider(console);
            var index = System.IO.Path.Combine(console, "index.html");
            // "/console" and "/console/" are one route; the page's relative links need the slash.
            app.MapGet("/console", (HttpContext http) => http.Request.Path.Value!.EndsWith('/')
                ? Results.Content(File.ReadAllText(index), "text/html; charset=utf-8")
                : Results.Redirect("/console/" + http.Request.QueryString)).ExcludeFromDescription();
            app.UseStaticFiles(new StaticFileOptions { FileProvider = files, RequestPath = "/console" });
        }
        return app;
    }
}
