using Caas.Actors.Common;
using Microsoft.Data.Sqlite;

namespace Caas.Actors.Tests;

/// <summary>The prepared statement the SQLite writers bind by position, against a real SQLite file.</summary>
public sealed class SqliteStatementTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("caas-stmt-").FullName;
    private readonly SqliteConnection _c;

    public SqliteStatementTests()
    {
        _c = new SqliteConnection($"Data Source={Path.Combine(_dir, "t.db")};Pooling=False");
        _c.Open();
        Exec("PRAGMA journal_mode = WAL");
        Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, n INTEGER, r REAL, b BLOB)");
    }

    public void Dispose()
    {
        _c.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private void Exec(string sql)
    {
        using var cmd = _c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>The rows, each blob as hex (arrays compare by reference).</summary>
    private List<(string K, long? N, double? R, string? B)> Rows()
    {
        using var cmd = _c.CreateCommand();
        cmd.CommandText = "SELECT k, n, r, b FROM t ORDER BY id";
        using var r = cmd.ExecuteReader();
        var rows = new List<(string, long?, double?, string?)>();
        while (r.Read())
            rows.Add((r.GetString(0), r.IsDBNull(1) ? null : r.GetInt64(1), r.IsDBNull(2) ? null : r.GetDouble(2),
                r.IsDBNull(3) ? null : Convert.ToHexString((byte[])r.GetValue(3))));
        return rows;
    }

    [Fact]
    public void Values_of_every_bound_type_are_stored_as_the_ado_command_would_store_them()
    {
        using var tx = _c.BeginTransaction();
        using (var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k, n, r, b) VALUES (?1, ?2, ?3, ?4)"))
        {
            Assert.Equal(1, insert.Bind(1, "plain").Bind(2, 42L).Bind(3, 1.5).Bind(4, new byte[] { 1, 2, 3 }).Run());
            // Text beyond ASCII (accents, CJK, an emoji outside the BMP) round-trips through SQLite's UTF-8 storage.
            Assert.Equal(1, insert.Bind(1, "é 中文 😀").Bind(2, (long?)null).Run());
            Assert.Equal(1, insert.BindValue(1, "boxed").BindValue(2, 7).BindValue(3, DBNull.Value).BindValue(4, null).Run());
            Assert.Equal(1, insert.BindValue(1, "bool").BindValue(2, true).Run());
        }
        tx.Commit();
        Assert.Equal(
            [("plain", 42L, 1.5, "010203"), ("é 中文 😀", null, null, null), ("boxed", 7L, null, null), ("bool", 1L, null, null)],
            Rows());
    }

    [Fact]
    public void A_run_clears_its_bindings_so_a_value_never_leaks_into_the_next_row()
    {
        using var tx = _c.BeginTransaction();
        using (var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k, n) VALUES (?1, ?2)"))
        {
            insert.Bind(1, "first").Bind(2, 1L).Run();
            insert.Bind(1, "second").Run();
        }
        tx.Commit();
        Assert.Equal([("first", 1L, null, null), ("second", null, null, null)], Rows());
    }

    [Fact]
    public void Returning_gives_the_new_id_and_null_when_the_conflict_inserted_nothing()
    {
        using var tx = _c.BeginTransaction();
        using var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k) VALUES (?1) ON CONFLICT (k) DO NOTHING RETURNING id");
        var id = insert.Bind(1, "a").RunScalarInt64();
        Assert.NotNull(id);
        Assert.Null(insert.Bind(1, "a").RunScalarInt64());
        Assert.Equal(id + 1, insert.Bind(1, "b").RunScalarInt64());
        using var changes = SqliteStatement.Prepare(_c, "INSERT INTO t (k) VALUES (?1) ON CONFLICT (k) DO NOTHING");
        Assert.Equal(0, changes.Bind(1, "a").Run());
        Assert.Equal(1, changes.Bind(1, "c").Run());
    }

    [Fact]
    public void Named_parameters_are_found_by_position_once()
    {
        using var tx = _c.BeginTransaction();
        using var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k, n) VALUES (@k, @n)");
        Assert.Equal(1, insert.IndexOf("@k"));
        Assert.Equal(2, insert.IndexOf("@n"));
        Assert.Equal(0, insert.IndexOf("@absent"));
        insert.Bind(insert.IndexOf("@k"), "named").Bind(insert.IndexOf("@n"), 3L).Run();
        tx.Commit();
        Assert.Equal([("named", 3L, null, null)], Rows());
    }

    [Fact]
    public void A_failing_row_throws_the_databases_error_and_the_statement_runs_again_afterwards()
    {
        using var tx = _c.BeginTransaction();
        using var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k) VALUES (?1)");
        insert.Bind(1, "dup").Run();
        var e = Assert.Throws<SqliteException>(() => insert.Bind(1, "dup").Run());
        Assert.Equal(19, e.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Throws<SqliteException>(() => insert.Run()); // k is NOT NULL: nothing of the failed row stayed bound
        insert.Bind(1, "next").Run();
        tx.Commit();
        Assert.Equal(["dup", "next"], Rows().Select(r => r.K));
    }

    [Fact]
    public void Only_one_statement_is_accepted_and_an_unknown_value_type_is_refused()
    {
        Assert.Throws<ArgumentException>(() => SqliteStatement.Prepare(_c, "INSERT INTO t (k) VALUES ('a'); DELETE FROM t"));
        Assert.Throws<ArgumentException>(() => SqliteStatement.Prepare(_c, "  "));
        Assert.Throws<SqliteException>(() => SqliteStatement.Prepare(_c, "INSERT INTO missing VALUES (1)"));
        using var insert = SqliteStatement.Prepare(_c, "INSERT INTO t (k) VALUES (?1)");
        Assert.Throws<ArgumentException>(() => insert.BindValue(1, DateTime.UtcNow));
        Assert.Empty(Rows());
    }
}
