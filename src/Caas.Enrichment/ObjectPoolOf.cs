using System.Collections.Concurrent;

namespace Caas.Enrichment;

/// <summary>A minimal pool for objects that are costly to create and not thread-safe (ML.NET prediction engines).</summary>
internal sealed class ObjectPoolOf<T>(Func<T> create) where T : class
{
    private readonly ConcurrentBag<T> _items = [];

    public T Rent() => _items.TryTake(out var item) ? item : create();

    public void Return(T item) => _items.Add(item);

    /// <summary>Items waiting in the pool (not rented now).</summary>
    public int Count => _items.Count;
}
