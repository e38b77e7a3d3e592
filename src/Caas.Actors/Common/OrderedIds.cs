using System.Security.Cryptography;

namespace Caas.Actors.Common;

/// <summary>
/// UUIDv7 ids (RFC 9562) that sort in the order this process made them, also within one millisecond: the 12 bits after
/// the version count up inside a millisecond (the RFC's method 1), where <see cref="Guid.CreateVersion7()"/> puts random
/// bits, so two ids made a fraction of a millisecond apart could sort either way. For lists paged by id, newest first
/// (the audit access log, dead letters). Written like <c>Guid.ToString("N")</c>: 32 lowercase hex digits.
/// </summary>
public sealed class OrderedIds
{
    /// <summary>The process's generator.</summary>
    private static readonly OrderedIds Process = new();

    private readonly Lock _gate = new();
    private long _lastMs = -1;
    private int _counter;

    public static string NewUuid7() => Process.Next(DateTimeOffset.UtcNow);

    public static string NewUuid7(DateTimeOffset at) => Process.Next(at);

    /// <summary>An id for <paramref name="at"/>, after every id this generator made before (a clock that went back included).</summary>
    public string Next(DateTimeOffset at)
    {
        long ms;
        int counter;
        lock (_gate)
        {
            ms = Math.Max(at.ToUnixTimeMilliseconds(), _lastMs);
            if (ms == _lastMs && ++_counter > 0xFFF) (ms, _counter) = (ms + 1, 0); // 4,096 in one millisecond: borrow the next
            else if (ms != _lastMs) _counter = 0;
            _lastMs = ms;
            counter = _counter;
        }
        Span<byte> b = stackalloc byte[16];
        RandomNumberGenerator.Fill(b[8..]);
        for (var i = 0; i < 6; i++) b[i] = (byte)(ms >> (40 - 8 * i));
        b[6] = (byte)(0x70 | (counter >> 8));
        b[7] = (byte)counter;
        b[8] = (byte)(0x80 | (b[8] & 0x3F));
        return Convert.ToHexStringLower(b);
    }
}
