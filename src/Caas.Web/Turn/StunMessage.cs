using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Caas.Web.Turn;

/// <summary>
/// A STUN message (RFC 8489) with the TURN methods and attributes (RFC 8656) the health check needs: a 20-byte
/// header (type, length, magic cookie, 96-bit transaction id) and type-length-value attributes padded to 4 bytes.
/// </summary>
public sealed class StunMessage
{
    public const uint MagicCookie = 0x2112A442;
    public const int HeaderLength = 20;

    public const ushort Binding = 0x001, Allocate = 0x003, Refresh = 0x004;
    public const ushort ClassRequest = 0x000, ClassSuccess = 0x100, ClassError = 0x110;

    public const ushort AttrUsername = 0x0006, AttrMessageIntegrity = 0x0008, AttrErrorCode = 0x0009, AttrLifetime = 0x000D,
        AttrRealm = 0x0014, AttrNonce = 0x0015, AttrXorRelayedAddress = 0x0016, AttrRequestedTransport = 0x0019,
        AttrXorMappedAddress = 0x0020, AttrMappedAddress = 0x0001, AttrSoftware = 0x8022;

    /// <summary>The IANA protocol number of UDP, for REQUESTED-TRANSPORT.</summary>
    public const byte ProtocolUdp = 17;

    private readonly List<(ushort Type, byte[] Value)> _attributes = [];

    private StunMessage(ushort type, byte[] transactionId)
    {
        Type = type;
        TransactionId = transactionId;
    }

    public ushort Type { get; }

    public byte[] TransactionId { get; }

    public IReadOnlyList<(ushort Type, byte[] Value)> Attributes => _attributes;

    /// <summary>The method bits of the type (the class bits masked out).</summary>
    public ushort Method => (ushort)(Type & ~0x0110);

    public ushort Class => (ushort)(Type & 0x0110);

    public bool IsSuccess => Class == ClassSuccess;

    public bool IsError => Class == ClassError;

    public static StunMessage Request(ushort method) => new((ushort)(method | ClassRequest), RandomNumberGenerator.GetBytes(12));

    public StunMessage Add(ushort type, byte[] value)
    {
        _attributes.Add((type, value));
        return this;
    }

    public StunMessage Add(ushort type, string value) => Add(type, Encoding.UTF8.GetBytes(value));

    public StunMessage AddLifetime(uint seconds)
    {
        var value = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(value, seconds);
        return Add(AttrLifetime, value);
    }

    public byte[]? Get(ushort type) => _attributes.FirstOrDefault(a => a.Type == type).Value;

    public string? GetString(ushort type) => Get(type) is { } v ? Encoding.UTF8.GetString(v) : null;

    /// <summary>ERROR-CODE as (code, reason), e.g. (401, "Unauthorized").</summary>
    public (int Code, string Reason)? Error =>
        Get(AttrErrorCode) is { Length: >= 4 } v ? ((v[2] & 0x7) * 100 + v[3], Encoding.UTF8.GetString(v, 4, v.Length - 4)) : null;

    /// <summary>XOR-MAPPED-ADDRESS (or XOR-RELAYED-ADDRESS), decoded.</summary>
    public IPEndPoint? XorAddress(ushort type = AttrXorMappedAddress)
    {
        if (Get(type) is not { Length: >= 8 } v) return null;
        var port = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(v.AsSpan(2)) ^ (MagicCookie >> 16));
        var cookie = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(cookie, MagicCookie);
        var mask = cookie.Concat(TransactionId).ToArray();
        var length = v[1] == 0x01 ? 4 : v[1] == 0x02 ? 16 : 0;
        if (length == 0 || v.Length < 4 + length) return null;
        var address = new byte[length];
        for (var i = 0; i < length; i++) address[i] = (byte)(v[4 + i] ^ mask[i]);
        return new IPEndPoint(new IPAddress(address), port);
    }

    /// <summary>
    /// The wire form. With a key, MESSAGE-INTEGRITY goes last: HMAC-SHA1 over the message before it, whose header
    /// length already counts the integrity attribute (RFC 8489 §14.5).
    /// </summary>
    public byte[] Encode(byte[]? integrityKey = null)
    {
        using var body = new MemoryStream();
        foreach (var (type, value) in _attributes) WriteAttribute(body, type, value);
        var attributes = body.ToArray();
        var length = attributes.Length + (integrityKey is null ? 0 : 24);
        var message = new byte[HeaderLength + length];
        BinaryPrimitives.WriteUInt16BigEndian(message, Type);
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(2), (ushort)length);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(4), MagicCookie);
        TransactionId.CopyTo(message, 8);
        attributes.CopyTo(message, HeaderLength);
        if (integrityKey is not null)
        {
            var at = HeaderLength + attributes.Length;
            var mac = HMACSHA1.HashData(integrityKey, message.AsSpan(0, at));
            BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(at), AttrMessageIntegrity);
            BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(at + 2), 20);
            mac.CopyTo(message, at + 4);
        }
        return message;
    }

    /// <summary>The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).</summary>
    public static byte[] LongTermKey(string username, string realm, string password) =>
        MD5.HashData(Encoding.UTF8.GetBytes($"{username}:{realm}:{password}"));

    /// <summary>The total length of the message that starts with this header, or -1 when it is not a STUN header.</summary>
    public static int FrameLength(ReadOnlySpan<byte> header) =>
        header.Length >= HeaderLength && (header[0] & 0xC0) == 0 && BinaryPrimitives.ReadUInt32BigEndian(header[4..]) == MagicCookie
            ? HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(header[2..])
            : -1;

    public static StunMessage? TryDecode(ReadOnlySpan<byte> data)
    {
        var total = FrameLength(data);
        if (total < HeaderLength || total > data.Length || (total & 3) != 0) return null;
        var message = new StunMessage(BinaryPrimitives.ReadUInt16BigEndian(data), data.Slice(8, 12).ToArray());
        var at = HeaderLength;
        while (at + 4 <= total)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(data[at..]);
            var length = BinaryPrimitives.ReadUInt16BigEndian(data[(at + 2)..]);
            if (at + 4 + length > total) return null;
            message._attributes.Add((type, data.Slice(at + 4, length).ToArray()));
            at += 4 + ((length + 3) & ~3);
        }
        return message;
    }

    private static void WriteAttribute(Stream s, ushort type, byte[] value)
    {
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(head, type);
        BinaryPrimitives.WriteUInt16BigEndian(head[2..], (ushort)value.Length);
        s.Write(head);
        s.Write(value);
        for (var i = value.Length; (i & 3) != 0; i++) s.WriteByte(0);
    }
}
