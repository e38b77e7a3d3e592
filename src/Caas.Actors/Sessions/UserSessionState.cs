using System.Collections.Immutable;
using Caas.Actors.Common;

namespace Caas.Actors.Sessions;

public sealed record UserProfile(string? DisplayName, string TimeZone, string Locale)
{
    public static UserProfile Default { get; } = new(null, "UTC", "en");
}

/// <summary>The persisted part of a user's session: presence, read markers, profile.</summary>
public sealed record UserSessionState(string Status, DateTimeOffset? LastSeen, ImmutableDictionary<string, long> ReadMarkers,
    UserProfile Profile) : ICaasMessage
{
    public static UserSessionState Empty { get; } =
        new(PresenceStatus.Offline, null, ImmutableDictionary<string, long>.Empty, UserProfile.Default);

    /// <summary>The hash of the last event applied: where the entity's next event chains on (HashChain).</summary>
    public string? LastHash { get; init; }

    /// <summary>Per conversation, the journal sequence number up to which the user's clients have every event.</summary>
    public ImmutableDictionary<string, long> DeliveredMarkers { get; init; } = ImmutableDictionary<string, long>.Empty;

    public UserSessionState Apply(IUserSessionEvent e) => ApplyEvent(e) with { LastHash = e.Meta.Hash ?? LastHash };

    private UserSessionState ApplyEvent(IUserSessionEvent e) => e switch
    {
        PresenceChanged p => this with { Status = p.Status, LastSeen = p.Meta.OccurredAt },
        ReadMarked r => this with { ReadMarkers = ReadMarkers.SetItem(r.ConversationId, r.Seq) },
        DeliveredMarked d => this with { DeliveredMarkers = DeliveredMarkers.SetItem(d.ConversationId, d.EventSeq) },
        ProfileUpdated u => this with
        {
            Profile = new UserProfile(u.DisplayName ?? Profile.DisplayName, u.TimeZone ?? Profile.TimeZone, u.Locale ?? Profile.Locale),
        },
        // The profile is personal data too: erasure forgets it (a later ProfileUpdated may set it again).
        UserErased => this with { Profile = UserProfile.Default },
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown session event."),
    };
}

public sealed record PresenceView(string UserId, string Status, DateTimeOffset? LastSeen, int Connections) : ICaasMessage;

public sealed record ProfileView(string UserId, UserProfile Profile) : ICaasMessage;

public sealed record ReadMarker(string ConversationId, long Seq) : ICaasMessage;

public sealed record DeliveredMarker(string ConversationId, long EventSeq) : ICaasMessage;

/// <summary>Every conversation's read marker of one user (a conversation never marked is absent: nothing read).</summary>
public sealed record ReadMarkers(System.Collections.Immutable.ImmutableDictionary<string, long> Markers) : ICaasMessage;

public sealed record MessageSlotGranted(long SlotTicks) : ICaasMessage;

/// <summary>
/// A lease of <see cref="Granted"/> message slots, valid for <see cref="ValidFor"/> from when the holder asked.
/// <see cref="Carried"/> false: the holder's previous lease was forfeited, so its spent slots are already counted and
/// its pending ones must not come back into the new lease.
/// </summary>
public sealed record MessageSlotsLeased(string LeaseId, int Granted, TimeSpan ValidFor, bool Carried) : ICaasMessage;
