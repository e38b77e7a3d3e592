namespace Caas.Enrichment.Entities;

/// <summary>
/// Something recognised in a message. <see cref="Start"/> and <see cref="End"/> are UTF-16 offsets into the message text,
/// end exclusive, so <c>text[Start..End] == Text</c>. <see cref="Value"/> is the normalised form: E.164 for phones,
/// lower-cased address for e-mail, "USD 12.50" for money, ISO 8601 for dates and times.
/// </summary>
public sealed record Entity(string Type, int Start, int End, string Text, string Value);

public static class EntityTypes
{
    public const string Phone = "phone";
    public const string Email = "email";
    public const string Url = "url";
    public const string Money = "money";
    public const string Number = "number";
    public const string DateTime = "datetime";
    public const string Address = "address";

    public static readonly IReadOnlyList<string> All = [Phone, Email, Url, Money, Number, DateTime, Address];
}

/// <summary>What a recogniser needs besides the text: when the message was sent, where its sender lives, which phone region applies.</summary>
public sealed record EntityContext(DateTimeOffset SentAt, string TimeZoneId = "UTC", string DefaultPhoneRegion = "US")
{
    public static EntityContext Default { get; } = new(DateTimeOffset.UnixEpoch);
}
