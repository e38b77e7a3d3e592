using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Tenants;

namespace Caas.Actors.Tests;

public sealed class TenantSettingsDeciderTests
{
    private const string T = "t1";
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TenantSettingsState Defaults = TenantSettingsState.Default;

    private static UpdateTenantSettings Update(int? rate = null, int? horizon = null, string? region = null, int? maxChars = null) =>
        new(T, "admin-1", rate, horizon, region, maxChars);

    private static Rejection Invalid(UpdateTenantSettings command, params string[] fields)
    {
        var (evt, reply) = TenantSettingsDecider.Decide(Defaults, command, T0);
        Assert.Null(evt);
        var r = Assert.IsType<Rejection>(reply);
        Assert.Equal(ErrorCodes.ValidationFailed, r.Code);
        Assert.Equal(fields.Order().ToArray(), r.Errors!.Keys.Order().ToArray());
        return r;
    }

    [Fact]
    public void Defaults_are_sixty_a_minute_a_day_of_idempotency_us_and_4000_characters()
    {
        Assert.Equal(new TenantSettingsState(60, 86_400, "US", 4_000), Defaults);
        Assert.Equal(TimeSpan.FromHours(24), Defaults.IdempotencyHorizon);
        var (evt, reply) = TenantSettingsDecider.Decide(Defaults, new GetTenantSettings(T), T0);
        Assert.Null(evt);
        Assert.Same(Defaults, reply);
    }

    [Fact]
    public void An_update_changes_the_given_fields_and_keeps_the_rest()
    {
        var (evt, reply) = TenantSettingsDecider.Decide(Defaults, Update(rate: 120, region: "DE"), T0);
        var changed = Assert.IsType<TenantSettingsChanged>(evt);
        var expected = Defaults with { MessageRatePerMinute = 120, DefaultPhoneRegion = "DE" };
        Assert.Equal(new TenantSettingsChanged(new EventMeta(T, "admin-1", T0), expected), changed);
        Assert.Equal(expected, reply);

        (evt, reply) = TenantSettingsDecider.Decide(expected, Update(horizon: 3_600, maxChars: 10_000), T0);
        Assert.Equal(expected with { IdempotencyHorizonSeconds = 3_600, MaxMessageChars = 10_000 }, Assert.IsType<TenantSettingsChanged>(evt).Settings);
        Assert.Equal(TimeSpan.FromHours(1), ((TenantSettingsState)reply).IdempotencyHorizon);
    }

    [Fact]
    public void An_update_that_changes_nothing_writes_nothing()
    {
        var (evt, reply) = TenantSettingsDecider.Decide(Defaults, Update(rate: 60, region: "US"), T0);
        Assert.Null(evt);
        Assert.Equal(Defaults, reply);
        (evt, _) = TenantSettingsDecider.Decide(Defaults, Update(), T0);
        Assert.Null(evt);
    }

    [Theory]
    [InlineData(1, 60, "US", 1)]
    [InlineData(100_000, 2_592_000, "GB", 100_000)]
    public void Limits_are_inclusive(int rate, int horizon, string region, int maxChars)
    {
        var (evt, _) = TenantSettingsDecider.Decide(Defaults, Update(rate, horizon, region, maxChars), T0);
        Assert.Equal(new TenantSettingsState(rate, horizon, region, maxChars), Assert.IsType<TenantSettingsChanged>(evt).Settings);
    }

    [Fact]
    public void Each_bad_field_is_named()
    {
        Invalid(Update(rate: 0), "message_rate_per_minute");
        Invalid(Update(rate: 100_001), "message_rate_per_minute");
        Invalid(Update(horizon: 59), "idempotency_horizon_seconds");
        Invalid(Update(horizon: 2_592_001), "idempotency_horizon_seconds");
        Invalid(Update(maxChars: 0), "max_message_chars");
        Invalid(Update(maxChars: 100_001), "max_message_chars");
        foreach (var region in new[] { "us", "USA", "U", "", "U1", "ÜS" })
            Invalid(Update(region: region), "default_phone_region");
        Invalid(Update(-1, 0, "x", -5), "message_rate_per_minute", "idempotency_horizon_seconds", "default_phone_region", "max_message_chars");
    }

    [Fact]
    public void A_command_it_does_not_know_is_refused()
    {
        var (evt, reply) = TenantSettingsDecider.Decide(Defaults, new UnknownTenantCommand(T), T0);
        Assert.Null(evt);
        Assert.Equal(ErrorCodes.ValidationFailed, Assert.IsType<Rejection>(reply).Code);
    }

    private sealed record UnknownTenantCommand(string TenantId) : TenantCommand(TenantId);
}

public abstract class TenantSettingsActorSpecs(string kind) : JournalSpec(kind)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private IActorRef Start(string tenantId) => Sys.ActorOf(TenantSettingsActor.PropsFor(tenantId, Settings()));

    private T Ask<T>(IActorRef actor, object command)
    {
        actor.Tell(command, TestActor);
        return ExpectMsg<T>(Wait);
    }

    [Fact]
    public void Settings_are_persisted_and_recovered_per_tenant()
    {
        var actor = Start("acme");
        Assert.Equal(TenantSettingsState.Default, Ask<TenantSettingsState>(actor, new GetTenantSettings("acme")));
        Ask<TenantSettingsState>(actor, new UpdateTenantSettings("acme", "root", 10, null, null, null));
        var expected = new TenantSettingsState(10, 600, "FR", 500);
        Assert.Equal(expected, Ask<TenantSettingsState>(actor, new UpdateTenantSettings("acme", "root", null, 600, "FR", 500)));
        Assert.Equal(ErrorCodes.ValidationFailed,
            Ask<Rejection>(actor, new UpdateTenantSettings("acme", "root", 0, null, null, null)).Code);
        var other = Start("globex");
        Ask<TenantSettingsState>(other, new UpdateTenantSettings("globex", "root", 999, null, null, null));

        StopAndWait(actor);
        var again = Start("acme");
        Assert.Equal(expected, Ask<TenantSettingsState>(again, new GetTenantSettings("acme")));
        Assert.Equal(expected with { MaxMessageChars = 800 },
            Ask<TenantSettingsState>(again, new UpdateTenantSettings("acme", "root", null, null, null, 800)));
        StopAndWait(again);
        Assert.Equal(expected with { MaxMessageChars = 800 }, Ask<TenantSettingsState>(Start("acme"), new GetTenantSettings("acme")));
        StopAndWait(other);
        Assert.Equal(999, Ask<TenantSettingsState>(Start("globex"), new GetTenantSettings("globex")).MessageRatePerMinute);
    }
}

public sealed class TenantSettingsActorOnSqlite() : TenantSettingsActorSpecs("sqlite");

public sealed class TenantSettingsActorOnPostgres() : TenantSettingsActorSpecs("postgres");
