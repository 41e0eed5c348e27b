using Cluster.Contracts.V1;

namespace Cluster.Coordinator.Grains;

/// <summary>Splits the training set into contiguous, near-equal index ranges, one per member in rank order.</summary>
public static class ShardPlan
{
    /// <summary>The range of rank <paramref name="rank"/> among <paramref name="members"/> over <paramref name="count"/> samples.</summary>
    public static IndexRange RangeOf(int rank, int members, int count)
    {
        var start = (int)((long)rank * count / members);
        var end = (int)((long)(rank + 1) * count / members);
        return new IndexRange { Start = start, Count = end - start };
    }

    /// <summary>Fills <paramref name="owner"/>[i] with the rank owning sample i.</summary>
    public static void Owners(int members, Span<int> owner)
    {
        for (var r = 0; r < members; r++)
        {
            var range = RangeOf(r, members, owner.Length);
            owner.Slice(range.Start, range.Count).Fill(r);
        }
    }
}
