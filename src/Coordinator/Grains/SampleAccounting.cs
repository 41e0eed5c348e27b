namespace Cluster.Coordinator.Grains;

/// <summary>One epoch's proof that every training sample's gradient was applied exactly once.</summary>
public sealed record EpochAccounting(int Epoch, int Samples, int Used, int Duplicates, int Missing);

/// <summary>Marks each sample whose gradient the coordinator accepted, per epoch.</summary>
internal sealed class SampleAccounting(int samples)
{
    private readonly bool[] _used = new bool[samples];
    private int _count;
    private int _duplicates;

    public List<EpochAccounting> Epochs { get; } = [];

    public void Mark(ReadOnlySpan<int> indices)
    {
        foreach (var i in indices)
        {
            if (_used[i])
            {
                _duplicates++;
            }
            else
            {
                _used[i] = true;
                _count++;
            }
        }
    }

    /// <summary>Closes an epoch; a resumed epoch only saw the samples after its checkpoint, which <paramref name="alreadyDone"/> counts.</summary>
    public EpochAccounting Close(int epoch, int alreadyDone)
    {
        var record = new EpochAccounting(epoch, _used.Length, _count + alreadyDone, _duplicates, _used.Length - _count - alreadyDone);
        Epochs.Add(record);
        Array.Clear(_used);
        _count = 0;
        _duplicates = 0;
        return record;
    }
}
