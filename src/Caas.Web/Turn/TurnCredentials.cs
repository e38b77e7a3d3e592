using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Caas.Web.Turn;

/// <summary>
/// TURN REST credentials, the convention coturn checks with <c>use-auth-secret</c>: username
/// <c>"&lt;unix expiry&gt;:&lt;user id&gt;"</c>, password base64(HMAC-SHA1(secret, username)). The server recomputes
/// the password from the username with its <c>static-auth-secret</c> (any of them, which is what makes rotation work)
/// and refuses an expiry in the past; nothing is stored anywhere.
/// </summary>
public static class TurnCredentials
{
    public static (string Username, string Credential) Mint(string secret, string userId, DateTimeOffset expiresAt)
    {
        var username = expiresAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + ":" + userId;
        var mac = HMACSHA1.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(username));
        return (username, Convert.ToBase64String(mac));
    }
}
