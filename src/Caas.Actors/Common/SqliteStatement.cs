using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Caas.Actors.Common;

/// <summary>
/// One statement prepared through SQLite's own API on an open <see cref="SqliteConnection"/>, run many times inside the
/// caller's transaction with its parameters bound by position. For the hot per-row writes of a batch on SQLite: the
/// ADO.NET command binds every value by name (three <c>sqlite3_bind_parameter_index</c> lookups, a linear search of
/// the statement's names, per value), converts every string to a new UTF-8 array, and makes a reader, a binder per
/// parameter and an enumerator per execution (profiled on <c>caas bench --store sqlite</c>: binding and preparing 4.4%
/// of the CPU samples, and the read model's and search index's commands about a fifth of the bytes allocated). Text is
/// bound as UTF-16 straight from the string (SQLite copies it), without a .NET copy.
/// </summary>
/// <remarks>
/// Not thread-safe, like the connection it belongs to. The statement takes no part in the command's busy handling: run
/// it inside a write transaction (<c>BEGIN IMMEDIATE</c>, what <see cref="SqliteConnection.BeginTransaction()"/>
/// starts), where no step can find the database locked. Dispose it before the connection.
/// </remarks>
public sealed class SqliteStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _stmt;

    private SqliteStatement(sqlite3 db, sqlite3_stmt stmt)
    {
        _db = db;
        _stmt = stmt;
    }

    /// <summary>Prepares <paramref name="sql"/>: exactly one statement, its parameters numbered (<c>?1</c>, <c>?2</c> …) or named.</summary>
    public static SqliteStatement Prepare(SqliteConnection connection, string sql)
    {
        var db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(db, raw.sqlite3_prepare_v2(db, sql, out var stmt, out var tail));
        if (stmt is null || stmt.IsInvalid || !string.IsNullOrWhiteSpace(tail))
        {
            stmt?.Dispose();
            throw new ArgumentException("Not exactly one statement: " + sql, nameof(sql));
        }
        return new SqliteStatement(db, stmt);
    }

    /// <summary>The 1-based position of a named parameter (with its prefix, as in the SQL: <c>@t</c>), 0 when absent.</summary>
    public int IndexOf(string name) => raw.sqlite3_bind_parameter_index(_stmt, name);

    public SqliteStatement Bind(int index, string? value)
    {
        Check(_db, value is null ? raw.sqlite3_bind_null(_stmt, index) : raw.sqlite3_bind_text16(_stmt, index, value.AsSpan()));
        return this;
    }

    public SqliteStatement Bind(int index, long value)
    {
        Check(_db, raw.sqlite3_bind_int64(_stmt, index, value));
        return this;
    }

    public SqliteStatement Bind(int index, long? value) => value is { } v ? Bind(index, v) : BindNull(index);

    public SqliteStatement Bind(int index, double value)
    {
        Check(_db, raw.sqlite3_bind_double(_stmt, index, value));
        return this;
    }

    public SqliteStatement Bind(int index, ReadOnlySpan<byte> blob)
    {
        Check(_db, raw.sqlite3_bind_blob(_stmt, index, blob));
        return this;
    }

    public SqliteStatement BindNull(int index)
    {
        Check(_db, raw.sqlite3_bind_null(_stmt, index));
        return this;
    }

    /// <summary>A value of one of the types the writers pass (text, integers, booleans as 0/1, reals, blobs; null or <see cref="DBNull"/>).</summary>
    public SqliteStatement BindValue(int index, object? value) => value switch
    {
        null or DBNull => BindNull(index),
        string s => Bind(index, s),
        long l => Bind(index, l),
        int i => Bind(index, (long)i),
        short s => Bind(index, (long)s),
        bool b => Bind(index, b ? 1L : 0L),
        double d => Bind(index, d),
        float f => Bind(index, (double)f),
        byte[] bytes => Bind(index, bytes.AsSpan()),
        _ => throw new ArgumentException($"A {value.GetType().Name} cannot be bound here.", nameof(value)),
    };

    /// <summary>Runs the statement to its end; returns the rows it changed. Its bindings are cleared for the next run.</summary>
    public int Run()
    {
        try
        {
            int rc;
            while ((rc = raw.sqlite3_step(_stmt)) == raw.SQLITE_ROW) { }
            Check(_db, rc);
            return raw.sqlite3_changes(_db);
        }
        finally
        {
            Reset();
        }
    }

    /// <summary>
    /// Runs the statement and returns the first column of its first row as an integer (a <c>RETURNING id</c>), null when
    /// it returns no row. Any further rows are stepped through; its bindings are cleared for the next run.
    /// </summary>
    public long? RunScalarInt64()
    {
        try
        {
            long? first = null;
            int rc;
            while ((rc = raw.sqlite3_step(_stmt)) == raw.SQLITE_ROW)
                if (first is null && raw.sqlite3_column_type(_stmt, 0) != raw.SQLITE_NULL) first = raw.sqlite3_column_int64(_stmt, 0);
            Check(_db, rc);
            return first;
        }
        finally
        {
            Reset();
        }
    }

    private void Reset()
    {
        raw.sqlite3_reset(_stmt);
        raw.sqlite3_clear_bindings(_stmt);
    }

    public void Dispose() => _stmt.Dispose();

    private static void Check(sqlite3 db, int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_ROW or raw.SQLITE_DONE)) SqliteException.ThrowExceptionForRC(rc, db);
    }
}
