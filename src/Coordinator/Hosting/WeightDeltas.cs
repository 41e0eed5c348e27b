using Cluster.Contracts.Grpc;

namespace Cluster.Coordinator.Hosting;

/// <summary>
/// The step weights as block deltas (see <see cref="TensorBlocks"/>), shared by the workers of one coordinator: the
/// blocks that changed since the previous step are found once per step, and a worker that holds the previous step's
/// weights gets only those. Under plain SGD the first layer's rows of pixels that no sample of the batch lit keep their
/// bits, and MNIST's borders are such pixels.
/// </summary>
internal sealed class WeightDeltas
{
    private readonly Lock _sync = new();
    private float[] _last = [];
    private byte[] _mask = [];
    private long _lastStep = -1;
    private long _base = -1;
    private int _kept;

    /// <summary>What to send a worker that holds the weights of step <paramref name="held"/> (-1: none).</summary>
    /// <returns>The mask (empty: send the whole buffer), the step the delta is against, and the values the mask marks.</returns>
    public (ReadOnlyMemory<byte> Mask, long Base, int Kept) For(long step, ReadOnlySpan<float> weights, long held)
    {
        lock (_sync)
        {
            if (step != _lastStep || weights.Length != _last.Length)
            {
                // A new version: compared with the one before, which then becomes this one.
                if (weights.Length != _last.Length)
                {
                    _last = weights.ToArray();
                    _mask = new byte[TensorBlocks.MaskBytes(weights.Length)];
                    _base = -1;
                }
                else
                {
                    _kept = TensorBlocks.MarkChanged(weights, _last, _mask);
                    _base = _lastStep;
                }

                _lastStep = step;
            }

            if (held == step && step >= 0)
            {
                // Already sent (a retry round of the same step): nothing changed.
                return (new byte[_mask.Length], step, 0);
            }

            if (held >= 0 && held == _base && TensorBlocks.Pays(_kept, weights.Length))
            {
                return (_mask, _base, _kept);
            }

            return (ReadOnlyMemory<byte>.Empty, -1, weights.Length);
        }
    }
}
