using System.Text;

namespace Caas.Node;

/// <summary>
/// A key kept in a file of the data directory (<c>jwt-secret</c>, <c>master-key</c>): created readable by its owner only
/// from the first byte (never written wider and narrowed afterwards), and refused when it is readable by group or others.
/// </summary>
public static class SecretFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode Wider = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
                                       UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>The file's trimmed text; created with <paramref name="generate"/> (mode 0600) when absent.</summary>
    public static string ReadOrCreate(string path, Func<string> generate)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        if (!File.Exists(path))
        {
            // Written whole to a private temporary file, then moved into place without overwriting: a node starting at
            // the same time never reads a half-written key or a file still held open, and the first one in wins.
            var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
                using (var stream = new FileStream(temp, options)) stream.Write(Encoding.UTF8.GetBytes(generate()));
                File.Move(temp, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first: read theirs.
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
        CheckPrivate(path);
        return File.ReadAllText(path).Trim();
    }

    /// <summary>Refuses a key file that group or others may read or write.</summary>
    public static void CheckPrivate(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        var mode = File.GetUnixFileMode(path);
        if ((mode & Wider) != 0)
            throw new InvalidOperationException(
                $"The key file {path} is readable or writable by group or others (mode {Convert.ToString((int)mode, 8)}); " +
                $"restrict it with `chmod 600 {path}` and start again.");
    }
}
