namespace Caas.Tests.Shared;

/// <summary>The services scripts/test.sh starts for the media tests (radosgw, Redis); a test without them fails, never skips.</summary>
public static class TestServices
{
    public static string S3Endpoint => Required("CAAS_TEST_S3_ENDPOINT");
    public static string S3AccessKey => Required("CAAS_TEST_S3_ACCESS_KEY");
    public static string S3SecretKey => Required("CAAS_TEST_S3_SECRET_KEY");
    public static string Redis => Required("CAAS_TEST_REDIS");

    /// <summary>A bucket name of its own for a test class (S3 bucket names: lower case, digits, dashes).</summary>
    public static string NewBucket(string purpose)
    {
        var name = $"caas-{purpose}-{Guid.NewGuid():N}";
        return name.Length > 63 ? name[..63] : name;
    }

    private static string Required(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } v
            ? v
            : throw new InvalidOperationException($"{name} is not set: run the tests through scripts/test.sh, which starts the service.");
}
