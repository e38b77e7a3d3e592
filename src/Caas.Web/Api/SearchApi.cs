using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Streams.Search;
using Caas.Web.Auth;
using Caas.Web.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Api;

/// <summary>Search budgets per user: searches, and suggestions (typed as the user types, so larger).</summary>
public sealed record SearchLimits(int SearchesPerMinute = 60, int SuggestionsPerMinute = 600);

/// <summary>Per-user token buckets for searches and suggestions (refilled each minute).</summary>
public sealed class SearchLimiter(SearchLimits limits) : IDisposable
{
    private readonly PartitionedRateLimiter<string> _searches = Bucket(limits.SearchesPerMinute);
    private readonly PartitionedRateLimiter<string> _suggestions = Bucket(limits.SuggestionsPerMinute);

    private static PartitionedRateLimiter<string> Bucket(int perMinute) => PartitionedRateLimiter.Create<string, string>(key =>
        RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = perMinute,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
        }));

    /// <summary>Null when allowed; else the 429 to answer.</summary>
    public IResult? Check(Caller caller, bool suggestion)
    {
        using var lease = (suggestion ? _suggestions : _searches).AttemptAcquire(caller.TenantId + "|" + caller.UserId);
        if (lease.IsAcquired) return null;
        var after = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) && wait > TimeSpan.Zero ? wait : TimeSpan.FromSeconds(60);
        return Problems.Of(ErrorCodes.RateLimited, suggestion ? "Too many suggestions; slow down." : "Too many searches: 60 a minute.",
            retryAfter: Math.Max(1, Math.Ceiling(after.TotalSeconds)));
    }

    public void Dispose()
    {
        _searches.Dispose();
        _suggestions.Dispose();
    }
}

/// <summary>
/// Search: messages (full text with highlights and filters), conversations, people, all at once, suggestions as the user
/// types, and the user's recent searches. Every search is the caller's: their tenant, their conversations now.
/// </summary>
public static class SearchApi
{
    private static readonly string[] HasValues = ["file", "image", "audio", "video", "link"];
    private static readonly string[] EntityValues = ["phone", "email", "url", "money"];
    private static readonly string[] SentimentValues = ["positive", "negative", "neutral"];

    public static IServiceCollection AddCaasSearch(this IServiceCollection services, SearchLimits? limits = null)
    {
        services.AddSingleton(new SearchLimiter(limits ?? new SearchLimits()));
        services.AddSingleton<SearchQueries>();
        // One cache for the cluster in Redis when CAAS_REDIS is set (the media capability's connection), else this node's memory.
        services.AddSingleton(sp => sp.GetService<Caas.Web.Media.MediaSettings>()?.Redis is { Length: > 0 }
            ? new SearchCache(sp.GetRequiredService<SearchIndex>(), sp.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>())
            : new SearchCache(sp.GetRequiredService<SearchIndex>()));
        services.AddSingleton<RecentSearches>();
        return services;
    }

    public static RouteGroupBuilder MapSearch(this RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/search").WithTags("Search");

        g.MapGet("/messages", async (HttpContext http, Caller caller, SearchLimiter limiter, SearchQueries search, RecentSearches recent, SearchCache cache) =>
        {
            if (limiter.Check(caller, false) is { } limited) return limited;
            var (request, problem) = await MessageRequestAsync(http, caller, search);
            if (problem is not null) return problem;
            // The same user's identical query (every parameter) answers from the cache while nothing it depends on changed.
            var (hits, _) = await cache.GetOrAddAsync($"{caller.TenantId}|{caller.UserId}|{QueryHash(http, caller)}{http.Request.QueryString.Value}",
                () => search.MessagesAsync(request!, http.RequestAborted), http.RequestAborted);
            await recent.RememberAsync(caller.TenantId, caller.UserId, http.Request.Query["q"].ToString().Trim(), DateTimeOffset.UtcNow, http.RequestAborted);
            return Results.Ok(new
            {
                items = hits.Items.Select(MessageView),
                next_cursor = hits.More ? Cursor.Encode("s", QueryHash(http, caller) + ":" + (request!.Offset + request.Limit).ToString(CultureInfo.InvariantCulture)) : null,
                total_estimate = hits.TotalEstimate,
            });
        });

        g.MapGet("/conversations", async (HttpContext http, Caller caller, SearchLimiter limiter, SearchQueries search, string? q, int? limit) =>
        {
            if (limiter.Check(caller, false) is { } limited) return limited;
            if (CheckText(q) is { } bad) return bad;
            if (Limit(limit, out var n) is { } badLimit) return badLimit;
            var hits = await search.ConversationsAsync(caller.TenantId, caller.UserId, q!, n, http.RequestAborted);
            return Results.Ok(new { items = hits.Select(ConversationView) });
        });

        g.MapGet("/users", async (HttpContext http, Caller caller, SearchLimiter limiter, SearchQueries search, string? q, int? limit) =>
        {
            if (limiter.Check(caller, false) is { } limited) return limited;
            if (CheckText(q) is { } bad) return bad;
            if (Limit(limit, out var n) is { } badLimit) return badLimit;
            var hits = await search.UsersAsync(caller.TenantId, q!, n, http.RequestAborted);
            return Results.Ok(new { items = hits.Select(UserView) });
        });

        g.MapGet("", async (HttpContext http, Caller caller, SearchLimiter limiter, SearchQueries search, RecentSearches recent, SearchIndex index,
            string? q, int? limit) =>
        {
            if (limiter.Check(caller, false) is { } limited) return limited;
            if (CheckText(q) is { } bad) return bad;
            if (Limit(limit ?? 5, out var n) is { } badLimit) return badLimit;
            var query = SearchQuery.Parse(q!);
            if (query.In is { } inConversation && !await MemberNowAsync(http, caller, search, inConversation))
                return Problems.NotFound("conversation");
            var messages = await search.MessagesAsync(new MessageSearch(caller.TenantId, caller.UserId, query, null, null, null, null,
                null, null, null, null, false, 0, n), http.RequestAborted);
            var conversations = await search.ConversationsAsync(caller.TenantId, caller.UserId, q!, n, http.RequestAborted);
            var users = await search.UsersAsync(caller.TenantId, q!, n, http.RequestAborted);
            var files = await SearchFiles.SearchAsync(index, caller.TenantId, caller.UserId, query, n, http.RequestAborted);
            await recent.RememberAsync(caller.TenantId, caller.UserId, q!.Trim(), DateTimeOffset.UtcNow, http.RequestAborted);
            return Results.Ok(new
            {
                messages = new { items = messages.Items.Select(MessageView) },
                conversations = new { items = conversations.Select(ConversationView) },
                users = new { items = users.Select(UserView) },
                files = new { items = files.Select(SearchFilesView.View) },
            });
        });

        g.MapGet("/suggestions", async (HttpContext http, Caller caller, SearchLimiter limiter, SearchQueries search, string? q, int? limit) =>
        {
            if (limiter.Check(caller, true) is { } limited) return limited;
            if (CheckText(q) is { } bad) return bad;
            if (Limit(limit ?? 8, out var n) is { } badLimit) return badLimit;
            var items = await search.SuggestionsAsync(caller.TenantId, caller.UserId, q!, n, http.RequestAborted);
            return Results.Ok(new { items = items.Select(s => new { kind = s.Kind, value = s.Value, id = s.Id }) });
        });

        g.MapGet("/recent", async (HttpContext http, Caller caller, RecentSearches recent) =>
            Results.Ok(new
            {
                items = (await recent.ListAsync(caller.TenantId, caller.UserId, http.RequestAborted))
                    .Select(r => new { q = r.Query, searched_at = Views.Utc(r.At) }),
            }));

        g.MapDelete("/recent", async (HttpContext http, Caller caller, RecentSearches recent) =>
            Results.Ok(new { cleared = await recent.ClearAsync(caller.TenantId, caller.UserId, http.RequestAborted) }));

        // Rebuild the index from the journal (operators and admins): searches keep answering from the old index until the new one is complete.
        var admin = v1.MapGroup("/admin/search").WithTags("Admin");
        admin.MapPost("/reindex", async (Caller caller, IRequiredActor<SearchProjectionKey> projection, ActorRegistry registry, HttpContext http) =>
        {
            if (!caller.HasAnyRole("admin", "operator")) return Problems.From(Rejection.Forbidden("The operator or admin role is required."));
            var started = await projection.ActorRef.Ask<ReindexStarted>(ReindexSearch.Instance, TimeSpan.FromSeconds(30), http.RequestAborted);
            // The people search's display names are rebuilt beside it (their own projection, from the user-session events).
            var profiles = registry.TryGet<ProfileProjectionKey>(out var profileProjection)
                ? await profileProjection.Ask<ProfileRebuildStatus>(RebuildProfiles.Instance, TimeSpan.FromSeconds(30), http.RequestAborted)
                : null;
            var status = await projection.ActorRef.Ask<ReindexStatus>(GetReindexStatus.Instance, TimeSpan.FromSeconds(30), http.RequestAborted);
            return Results.Json(new { already_running = started.AlreadyRunning, status = StatusView(status, profiles) }, statusCode: StatusCodes.Status202Accepted);
        });
        admin.MapGet("/reindex", async (Caller caller, IRequiredActor<SearchProjectionKey> projection, ActorRegistry registry, HttpContext http) =>
        {
            if (!caller.HasAnyRole("admin", "operator")) return Problems.From(Rejection.Forbidden("The operator or admin role is required."));
            var status = await projection.ActorRef.Ask<ReindexStatus>(GetReindexStatus.Instance, TimeSpan.FromSeconds(30), http.RequestAborted);
            var profiles = registry.TryGet<ProfileProjectionKey>(out var profileProjection)
                ? await profileProjection.Ask<ProfileRebuildStatus>(GetProfileRebuildStatus.Instance, TimeSpan.FromSeconds(30), http.RequestAborted)
                : null;
            return Results.Ok(StatusView(status, profiles));
        });
        return g;
    }

    private static object StatusView(ReindexStatus s, ProfileRebuildStatus? profiles) => new
    {
        state = s.Running ? "running" : "idle",
        offset = s.Offset,
        head = s.Head,
        swaps = s.Swaps,
        // The display names of the people search: null where this node's cluster runs no profile projection.
        profiles = profiles is null ? null : new { state = profiles.Running ? "running" : "idle", rebuilds = profiles.Rebuilds },
    };

    private static IResult? CheckText(string? q)
    {
        if (string.IsNullOrWhiteSpace(q)) return Problems.Invalid("q", "Required: the text to search for.");
        if (q.Length > SearchQuery.MaxLength) return Problems.Invalid("q", $"At most {SearchQuery.MaxLength} characters.");
        return null;
    }

    private static IResult? Limit(int? limit, out int n)
    {
        n = limit ?? 20;
        return n is < 1 or > 100 ? Problems.Invalid("limit", "Between 1 and 100.") : null;
    }

    /// <summary>A digest of everything that decides a message search's results (the caller too): a cursor carries it.</summary>
    private static string QueryHash(HttpContext http, Caller caller)
    {
        var b = new StringBuilder(caller.TenantId).Append('|').Append(caller.UserId);
        foreach (var key in new[] { "q", "conversation_id", "sender_id", "from", "to", "has", "intent", "sentiment", "entity", "sort", "limit" })
            b.Append('|').Append(key).Append('=').Append(http.Request.Query[key].ToString());
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(b.ToString())))[..16];
    }

    /// <summary>
    /// Whether the caller is a member of the conversation now, as its entity answers: a conversation just created (or
    /// joined) is searchable inside before the read model has the membership, and one the caller was just removed from
    /// is refused before the read model drops it. Only when the entity cannot answer does the read model decide.
    /// </summary>
    private static async Task<bool> MemberNowAsync(HttpContext http, Caller caller, SearchQueries search, string conversation)
    {
        if (http.RequestServices.GetService<Caas.Web.Edge.ClusterGateway>() is { } gateway)
        {
            try
            {
                var reply = await gateway.AskAsync(new Caas.Actors.Conversations.GetReadAccess(caller.TenantId, conversation, caller.UserId), http.RequestAborted);
                if (reply is Caas.Actors.Conversations.ReadAccess) return true;
                if (reply is Rejection { Code: ErrorCodes.NotFound or ErrorCodes.Forbidden or ErrorCodes.Banned }) return false;
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException && !http.RequestAborted.IsCancellationRequested)
            {
                // The entity did not answer in time: the read model decides.
            }
        }
        return await search.IsMemberAsync(caller.TenantId, caller.UserId, conversation, http.RequestAborted);
    }

    private static async Task<(MessageSearch? Request, IResult? Problem)> MessageRequestAsync(HttpContext http, Caller caller, SearchQueries search)
    {
        var query = http.Request.Query;
        var q = query["q"].ToString();
        if (CheckText(q) is { } bad) return (null, bad);
        int? asked = null;
        if (query.ContainsKey("limit")) asked = int.TryParse(query["limit"], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) ? l : 0;
        if (Limit(asked, out var limit) is { } badLimit) return (null, badLimit);
        var sort = query["sort"].ToString();
        if (sort is not ("" or "relevance" or "recent")) return (null, Problems.Invalid("sort", "relevance or recent."));
        DateTimeOffset? from = null, to = null;
        if (query.ContainsKey("from"))
        {
            if (!DateTimeOffset.TryParse(query["from"], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var f))
                return (null, Problems.Invalid("from", "An ISO 8601 time."));
            from = f;
        }
        if (query.ContainsKey("to"))
        {
            if (!DateTimeOffset.TryParse(query["to"], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
                return (null, Problems.Invalid("to", "An ISO 8601 time."));
            to = t;
        }
        string? One(string name, string[] allowed, out IResult? problem)
        {
            problem = null;
            if (!query.ContainsKey(name)) return null;
            var v = query[name].ToString();
            if (!allowed.Contains(v)) problem = Problems.Invalid(name, "One of: " + string.Join(", ", allowed) + ".");
            return v;
        }
        var has = One("has", HasValues, out var p1);
        var entity = One("entity", EntityValues, out var p2);
        var sentiment = One("sentiment", SentimentValues, out var p3);
        if ((p1 ?? p2 ?? p3) is { } badValue) return (null, badValue);
        string? intent = null;
        if (query.ContainsKey("intent"))
        {
            intent = query["intent"].ToString();
            if (intent.Length is 0 or > 64) return (null, Problems.Invalid("intent", "An intent label, 1 to 64 characters."));
        }
        string? sender = null;
        if (query.ContainsKey("sender_id"))
        {
            sender = query["sender_id"].ToString();
            if (!Ids.IsValid(sender)) return (null, Problems.Invalid("sender_id", "Not a valid user id."));
        }
        var offset = 0;
        if (query.ContainsKey("cursor"))
        {
            if (!Cursor.TryDecode(query["cursor"], "s", out var value) || value.Split(':') is not [var hash, var at]
                || hash != QueryHash(http, caller) || !int.TryParse(at, NumberStyles.None, CultureInfo.InvariantCulture, out offset))
                return (null, Problems.Invalid("cursor", "Not a cursor of this query."));
        }
        var parsed = SearchQuery.Parse(q);
        string? conversation = null;
        if (query.ContainsKey("conversation_id"))
        {
            conversation = query["conversation_id"].ToString();
            if (!Ids.IsValid(conversation)) return (null, Problems.NotFound("conversation"));
        }
        foreach (var c in new[] { conversation, parsed.In })
            if (c is not null && !await MemberNowAsync(http, caller, search, c))
                return (null, Problems.NotFound("conversation"));
        return (new MessageSearch(caller.TenantId, caller.UserId, parsed, conversation, sender, from, to, has, intent, sentiment, entity,
            sort == "recent", offset, limit), null);
    }

    private static object HighlightView(Highlight h) => new { field = h.Field, fragment = h.Fragment, ranges = h.Ranges };

    private static object MessageView(MessageHit m) => new
    {
        message_id = m.MessageId,
        conversation_id = m.ConversationId,
        seq = m.Seq,
        sender_id = m.SenderId,
        created_at = Views.Utc(m.CreatedAt),
        highlights = m.Highlights.Select(HighlightView),
    };

    private static object ConversationView(ConversationHit c) => new
    {
        conversation_id = c.ConversationId,
        type = c.Type,
        title = c.Title,
        highlights = c.Highlights.Select(HighlightView),
    };

    private static object UserView(UserHit u) => new { user_id = u.UserId, display_name = u.DisplayName, highlights = u.Highlights.Select(HighlightView) };
}
