using System.Text;
using System.Text.Json.Nodes;
using Caas.Actors.Common;
using Caas.Actors.Media;
using Caas.Actors.Serialization;

namespace Caas.Actors.Tests;

/// <summary>A deletion stored before <see cref="MediaDeleted.Erasure"/> existed reads back as a plain deletion.</summary>
public sealed class MediaDeletedFormTests(SerializationSystem fixture) : IClassFixture<SerializationSystem>
{
    [Fact]
    public void A_deletion_stored_without_the_erasure_field_reads_as_not_an_erasure()
    {
        var serializer = fixture.System.Serialization.FindSerializerFor(new MediaDeleted(new EventMeta("acme", "alice", DateTimeOffset.UnixEpoch), "f_1", "c-1"));
        var stored = new MediaDeleted(new EventMeta("acme", "root", DateTimeOffset.UnixEpoch), "f_1", "c-1", Erasure: true);
        var json = JsonNode.Parse(serializer.ToBinary(stored))!.AsObject();
        Assert.True(json["erasure"]!.GetValue<bool>());
        json.Remove("erasure");
        var old = (MediaDeleted)fixture.System.Serialization.Deserialize(Encoding.UTF8.GetBytes(json.ToJsonString()), CaasSerializer.Id, "media.deleted.v1");
        Assert.False(old.Erasure);
        Assert.Equal(stored with { Erasure = false }, old);
    }
}
