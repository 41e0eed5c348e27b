using System.Runtime.InteropServices;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.WorkerSilo;

/// <summary>
/// A worker's side of the tensors on one Join stream: step weights in (whole, or a block delta against the version it
/// holds) and gradients out (whole, or only their non-zero blocks), as the admission agreed (see <see cref="TensorBlocks"/>);
/// or both through the shared-memory file the admission offered, where this worker can open it (see <see cref="SharedTensorFile"/>).
/// </summary>
internal sealed class WorkerTensorCodec : IDisposable
{
    private byte[] _mask = [];
    private byte[] _packed = [];
    private SharedTensorFile? _shared;
    private long _inPlaceStep = -1;

    /// <summary>True when the admission agreed on block-sparse tensors for this stream.</summary>
    public bool Blocks { get; private set; }

    /// <summary>Step whose weights the buffer holds; -1 when unknown (before the first plan, after an admission).</summary>
    public long Held { get; private set; } = -1;

    /// <summary>True while tensors go through a shared-memory file.</summary>
    public bool Shared => _shared is not null;

    /// <summary>
    /// Takes the admission's choice; the weights held before it count for nothing. A shared-memory file offered is
    /// opened for <paramref name="parameterCount"/> parameters (one offered again, by its nonce, is kept); returns why an
    /// offered file could not be used (null when it is, or none was offered).
    /// </summary>
    public string? Admit(Admission admission, int parameterCount)
    {
        Blocks = admission.Admitted && admission.BlockTensors;
        Held = -1;
        _inPlaceStep = -1;
        var offered = admission.Admitted && admission.SharedMemoryPath.Length > 0;
        if (offered && _shared is { } kept && kept.FilePath == admission.SharedMemoryPath && kept.Nonce.SequenceEqual(admission.SharedMemoryNonce.Span) && kept.ParameterCount == parameterCount)
        {
            return null;
        }

        _shared?.Dispose();
        _shared = null;
        if (!offered)
        {
            return null;
        }

        try
        {
            _shared = SharedTensorFile.Open(admission.SharedMemoryPath, admission.SharedMemoryNonce.Span, parameterCount);
            // Both sides hold their mappings now, so the name can go at once: a coordinator killed before this worker's
            // first answer then leaves nothing behind in /dev/shm.
            _shared.Unlink();
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ex.Message;
        }
    }

    /// <summary>
    /// Decodes a plan's weights into <paramref name="weights"/>. A delta against a version other than the one held, or
    /// a delta the admission did not agree on, throws FAILED_PRECONDITION; bad sizes throw INVALID_ARGUMENT. Either way
    /// the buffer is left as it was.
    /// </summary>
    public void ReadWeights(StepPlan plan, ReadOnlySpan<byte> bytes, float[] weights)
    {
        if (plan.WeightsShared)
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "StepPlan.weights_shared is computed in place (BeginSharedStep), not decoded.");
        }

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
    /// Starts a weights_shared plan, which is computed in place on the file: checks the file holds the whole weights of
    /// the plan's step (else FAILED_PRECONDITION, nothing changed) and returns the file, whose
    /// <see cref="SharedTensorFile.Weights"/> and <see cref="SharedTensorFile.Gradient"/> the step then uses.
    /// </summary>
    public SharedTensorFile BeginSharedStep(StepPlan plan, ReadOnlySpan<byte> bytes)
    {
        var file = _shared ?? throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "StepPlan.weights_shared, but this worker has no shared-memory file from its admission.");
        if (!bytes.IsEmpty || !plan.WeightsMask.IsEmpty)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "StepPlan.weights_shared also carries weight bytes or a mask.");
        }

        file.CheckWeights(plan.Step);
        Held = -1;
        _inPlaceStep = -1;
        file.BeginGradient();
        return file;
    }

    /// <summary>
    /// Ends a step begun with <see cref="BeginSharedStep"/>: the weights must still be the step's (the coordinator writes
    /// the next only after this gradient), else FAILED_PRECONDITION and the gradient is not sent.
    /// </summary>
    public void EndSharedStep(StepPlan plan)
    {
        _shared!.CheckWeights(plan.Step);
        Held = plan.Step;
        _inPlaceStep = plan.Step;
    }

    /// <summary>
    /// The bytes to send for <paramref name="gradient"/> (of the step <paramref name="message"/> answers): none when it
    /// went into the shared-memory file (the message is then marked gradient_shared); its non-zero blocks when the
    /// admission agreed and that saves enough (the mask then goes into <paramref name="message"/>); else the whole buffer
    /// <paramref name="whole"/>.
    /// </summary>
    public ReadOnlyMemory<byte> Gradient(ReadOnlySpan<float> gradient, byte[] whole, GradientResult message)
    {
        if (_shared is { } file)
        {
            if (_inPlaceStep == message.Step)
            {
                file.MarkGradient(message.Step);
            }
            else
            {
                file.WriteGradient(message.Step, gradient);
            }

            message.GradientShared = true;
            return ReadOnlyMemory<byte>.Empty;
        }

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

    /// <summary>Unmaps the shared-memory file, if any.</summary>
    public void Dispose()
    {
        _shared?.Dispose();
        _shared = null;
    }
}
