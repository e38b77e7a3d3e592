using System.Buffers;
using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;

namespace Caas.Web.Hubs;

/// <summary>
/// The hub's payload shapes, the same on both protocols. JSON uses these options directly; MessagePack writes the
/// JSON shape as MessagePack (maps with the same snake_case keys, the same numbers, strings and nulls), so a client
/// reads one schema whichever protocol it chose, and the hub's anonymous payloads need no MessagePack attributes.
/// </summary>
public static class HubWire
{
    public static readonly JsonSerializerOptions Json = Configure(new JsonSerializerOptions());

    /// <summary>The JSON protocol's payload options (SignalR's own defaults, with snake_case names).</summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.DictionaryKeyPolicy = null;
        return o;
    }

    public static readonly MessagePackSerializerOptions MessagePack = MessagePackSerializerOptions.Standard
        .WithResolver(JsonShapedResolver.Instance)
        .WithSecurity(MessagePackSecurity.UntrustedData);
}

/// <summary>Resolves every type to <see cref="JsonShapedFormatter{T}"/>.</summary>
public sealed class JsonShapedResolver : IFormatterResolver
{
    public static readonly JsonShapedResolver Instance = new();

    public IMessagePackFormatter<T> GetFormatter<T>() => Cache<T>.Formatter;

    private static class Cache<T>
    {
        public static readonly IMessagePackFormatter<T> Formatter = new JsonShapedFormatter<T>();
    }
}

/// <summary>Writes a value as its JSON shape in MessagePack, and reads MessagePack back through the JSON binder.</summary>
public sealed class JsonShapedFormatter<T> : IMessagePackFormatter<T>
{
    private const int MaxDepth = 64;

    public void Serialize(ref MessagePackWriter writer, T value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }
        using var doc = JsonSerializer.SerializeToDocument(value, value.GetType(), HubWire.Json);
        Write(ref writer, doc.RootElement);
    }

    public T Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer)) Read(ref reader, json, 0);
        return JsonSerializer.Deserialize<T>(buffer.WrittenSpan, HubWire.Json)!;
    }

    private static void Write(ref MessagePackWriter w, JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var count = 0;
                foreach (var _ in e.EnumerateObject()) count++;
                w.WriteMapHeader(count);
                foreach (var p in e.EnumerateObject())
                {
                    w.Write(p.Name);
                    Write(ref w, p.Value);
                }
                return;
            case JsonValueKind.Array:
                w.WriteArrayHeader(e.GetArrayLength());
                foreach (var item in e.EnumerateArray()) Write(ref w, item);
                return;
            case JsonValueKind.String:
                w.Write(e.GetString());
                return;
            case JsonValueKind.Number:
                if (e.TryGetInt64(out var l)) w.Write(l);
                else if (e.TryGetUInt64(out var u)) w.Write(u);
                else w.Write(e.GetDouble());
                return;
            case JsonValueKind.True:
                w.Write(true);
                return;
            case JsonValueKind.False:
                w.Write(false);
                return;
            default:
                w.WriteNil();
                return;
        }
    }

    private static void Read(ref MessagePackReader r, Utf8JsonWriter j, int depth)
    {
        if (depth > MaxDepth) throw new MessagePackSerializationException("Nested too deeply.");
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Map:
                var fields = r.ReadMapHeader();
                j.WriteStartObject();
                for (var i = 0; i < fields; i++)
                {
                    if (r.NextMessagePackType != MessagePackType.String) throw new MessagePackSerializationException("Map keys must be strings.");
                    j.WritePropertyName(r.ReadString()!);
                    Read(ref r, j, depth + 1);
                }
                j.WriteEndObject();
                return;
            case MessagePackType.Array:
                var items = r.ReadArrayHeader();
                j.WriteStartArray();
                for (var i = 0; i < items; i++) Read(ref r, j, depth + 1);
                j.WriteEndArray();
                return;
            case MessagePackType.String:
                j.WriteStringValue(r.ReadString());
                return;
            case MessagePackType.Integer:
                if (r.NextCode == MessagePackCode.UInt64) j.WriteNumberValue(r.ReadUInt64());
                else j.WriteNumberValue(r.ReadInt64());
                return;
            case MessagePackType.Float:
                j.WriteNumberValue(r.ReadDouble());
                return;
            case MessagePackType.Boolean:
                j.WriteBooleanValue(r.ReadBoolean());
                return;
            case MessagePackType.Nil:
                r.ReadNil();
                j.WriteNullValue();
                return;
            default:
                throw new MessagePackSerializationException($"A {r.NextMessagePackType} value is not accepted here.");
        }
    }
}
