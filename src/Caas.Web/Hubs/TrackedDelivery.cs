using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Privacy;
using Caas.Streams.ReadModel;

namespace Caas.Web.Hubs;

/// <summary>
/// A durable event's payload with its conversation's <c>event_seq</c> (the journal sequence number: gap-free over all
/// of the conversation's events) added beside its own fields, so a client can acknowledge and resume by it.
/// </summary>
[JsonConverter(typeof(SequencedConverter))]
public sealed record Sequenced(long EventSeq, object Payload);

/// <summary>Writes the payload's fields, then <c>event_seq</c>; both hub protocols take this shape (see <see cref="HubWire"/>).</summary>
public sealed class SequencedConverter : JsonConverter<Sequenced>
{
    public override Sequenced Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("Server-to-client only.");

    public override void Write(Utf8JsonWriter writer, Sequenced value, JsonSerializerOptions options)
    {
        using var payload = JsonSerializer.SerializeToDocument(value.Payload, value.Payload.GetType(), options);
        writer.WriteStartObject();
        foreach (var field in payload.RootElement.EnumerateObject())
            if (field.Name != "event_seq") field.WriteTo(writer);
        writer.WriteNumber("event_seq", value.EventSeq);
        writer.WriteEndObject();
    }
}

/// <summary>A conversation event read back from its journal, with its journal sequence number.</summary>
public sealed record JournaledEvent(long EventSeq, IConversationEvent Event);

/// <summary>Reads a conversation's events after a journal sequence number: what a resuming client missed.</summary>
public sealed class ConversationJournal(ActorSystem system)
{
    private readonly Lazy<IMaterializer> _materializer = new(() => system.Materializer());

    /// <summary>
    /// The conversation's events with a journal sequence number above <paramref name="after"/>, in order, at most
    /// <paramref name="max"/> (one more means there were more). Content is opened as the serializer opens it.
    /// </summary>
    public async Task<IReadOnlyList<JournaledEvent>> AfterAsync(string tenantId, string conversationId, long after, int max, CancellationToken ct)
    {
        var pid = ConversationActor.PersistenceIdOf(Ids.EntityId(tenantId, conversationId));
        return await ProjectionRunner.ReadJournal(system).CurrentEventsByPersistenceId(pid, after + 1, long.MaxValue)
            .Where(e => e.Event is IConversationEvent)
            .Select(e => new JournaledEvent(e.SequenceNr, ContentSealing.InConversation((IConversationEvent)e.Event, conversationId)))
            .Take(max)
            .RunWith(Sink.Seq<JournaledEvent>(), _materializer.Value)
            .WaitAsync(ct);
    }
}
