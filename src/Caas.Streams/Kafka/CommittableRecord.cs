using Confluent.Kafka;

namespace Caas.Streams.Kafka;

/// <summary>
/// A consumed record with the handle that completes it. <see cref="Complete"/> says the record is persisted or
/// dead-lettered; the source commits a partition only up to the lowest record not yet complete.
/// </summary>
public sealed class CommittableRecord
{
    private readonly PartitionOffsets _partition;

    internal CommittableRecord(ConsumeResult<byte[]?, byte[]?> result, PartitionOffsets partition)
    {
        Result = result;
        _partition = partition;
    }

    public ConsumeResult<byte[]?, byte[]?> Result { get; }
    public string Topic => Result.Topic;
    public int Partition => Result.Partition.Value;
    public long Offset => Result.Offset.Value;
    public byte[]? Key => Result.Message.Key;
    public byte[]? Value => Result.Message.Value;

    internal PartitionOffsets Offsets => _partition;

    public void Complete() => _partition.Done(Offset);

    public override string ToString() => $"{Topic}[{Partition}]@{Offset}";
}
