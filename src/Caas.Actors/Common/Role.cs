using System.Text.Json.Serialization;

namespace Caas.Actors.Common;

/// <summary>Conversation roles in rank order: nobody acts on a peer or a superior.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Role>))]
public enum Role
{
    Member = 0,
    Moderator = 1,
    Admin = 2,
    Owner = 3,
}

public static class RoleNames
{
    public static string ToWire(this Role role) => role switch
    {
        Role.Owner => "owner",
        Role.Admin => "admin",
        Role.Moderator => "moderator",
        _ => "member",
    };

    public static bool TryParse(string? text, out Role role)
    {
        switch (text)
        {
            case "owner": role = Role.Owner; return true;
            case "admin": role = Role.Admin; return true;
            case "moderator": role = Role.Moderator; return true;
            case "member": role = Role.Member; return true;
            default: role = Role.Member; return false;
        }
    }
}
