using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Web.Api;

namespace Caas.Web.Hubs;

/// <summary>
/// A room's member list as JoinRoom and Resume answer it (<c>[{user_id, role, joined_at}]</c>), serialized once per
/// membership instead of once per join: everyone in a room of 1,000 joining live made 1,000 lists of 1,000 members,
/// and formatting and serializing them took a quarter of the node's CPU. The entity hands out one array per membership
/// (<see cref="ConversationView.Of"/>), so a view read on this node is recognised by that array; a view that came over
/// the wire is a new array and is serialized for its own answer. The bytes are the same JSON the list of objects made,
/// so both hub protocols (MessagePack writes the JSON shape) see no difference.
/// </summary>
[JsonConverter(typeof(Converter))]
public sealed class RoomMembers
{
    private static readonly ConditionalWeakTable<Member[], RoomMembers> Cache = new();

    private readonly byte[] _json;

    private RoomMembers(ImmutableArray<Member> members)
    {
        _json = JsonSerializer.SerializeToUtf8Bytes(
            members.Select(m => new { user_id = m.UserId, role = m.Role.ToWire(), joined_at = Views.Utc(m.JoinedAt) }), HubWire.Json);
        UserIds = [.. members.Select(m => m.UserId)];
    }

    /// <summary>The members' user ids, in the list's order (one array per membership, shared by every join).</summary>
    public IReadOnlyList<string> UserIds { get; }

    public static RoomMembers Of(ImmutableArray<Member> members) =>
        ImmutableCollectionsMarshal.AsArray(members) is { } array
            ? Cache.GetValue(array, _ => new RoomMembers(members))
            : new RoomMembers(members);

    /// <summary>Writes the serialized list as it is; an answer is never read back.</summary>
    public sealed class Converter : JsonConverter<RoomMembers>
    {
        public override RoomMembers Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("A member list is only written.");

        public override void Write(Utf8JsonWriter writer, RoomMembers value, JsonSerializerOptions options) =>
            writer.WriteRawValue(value._json, skipInputValidation: true);
    }
}
