using System.Runtime.InteropServices;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.WorkerSilo;

/// <summary>
/// A worker's side of the tensors on one Join stream: step weights in (whole, or a block delta against the version it
/// holds) and gradients out (whole, or only their non-zero blocks), as the admission agreed (see <see cref="TensorBlocks"/>).
/// </summary>
internal sealed class WorkerTensorCodec
{
    private byte[] _mask = [];
    private byte[] _packed = [];

    /// <summary>True when the admission agreed on block-sparse tensors for this stream.</summary>
    public bool Blocks { get; private set; }

    /// <summary>Step whose weights the buffer holds; -1 when unknown (before the first plan, after an admission).</summary>
    public long Held { get; private set; } = -1;

    /// <summary>Takes the admission's choice; the weights held before it count for nothing.</summary>
    public void Admit(Admission admission)
    {
        Blocks = admission.Admitted && admission.BlockTensors;
        Held = -1;
    }

    /// <summary>
    /// Decodes a plan's weights into <paramref name="weights"/>. A delta against a version other than the one held, or
    /// a delta the admission did not agree on, throws FAILED_PRECONDITION; bad sizes throw INVALID_ARGUMENT. Either way
    /// the buffer is left as it was.
    /// </summary>
    public void ReadWeights(StepPlan plan, ReadOnlySpan<byte> bytes, float[] weights)
    {
        if (plan.WeightsMask.IsEmpty)
        {
            TensorCodec.ToFloats(bytes, weights, "StepPlan.weights");
        }
        else
        {
            if (!Blocks)
            {
                throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "StepPlan.weights is block-sparse, but the admission did not agree on block tensors.");
            }

            if (plan.WeightsBase != Held || Held < 0)
            {
                throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"StepPlan.weights is a delta against step {plan.WeightsBase}, but this worker holds the weights of step {Held}.");
            }

            TensorBlocks.Scatter(bytes, plan.WeightsMask.Span, weights, clearUnmarked: false, "StepPlan.weights");
        }

        Held = plan.Step;
    }

    /// <summary>
    /// The bytes to send for <paramref name="gradient"/>: its non-zero blocks when the admission agreed and that saves
    /// enough (the mask then goes into <paramref name="message"/>), else the whole buffer <paramref name="whole"/>.
    /// </summary>
    public ReadOnlyMemory<byte> Gradient(ReadOnlySpan<float> gradient, byte[] whole, GradientResult message)
    {
        if (!Blocks)
        {
            return whole;
        }

        if (_mask.Length != TensorBlocks.MaskBytes(gradient.Length))
        {
            _mask = new byte[TensorBlocks.MaskBytes(gradient.Length)];
            _packed = new byte[gradient.Length * sizeof(float)];
        }

        var kept = TensorBlocks.Compact(gradient, _mask, MemoryMarshal.Cast<byte, float>(_packed.AsSpan()));
        if (!TensorBlocks.Pays(kept, gradient.Length))
        {
            return whole;
        }

        message.GradientMask = ByteString.CopyFrom(_mask);
        return _packed.AsMemory(0, kept * sizeof(float));
    }
}
