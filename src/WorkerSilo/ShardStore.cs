using System.Runtime.InteropServices;
using Cluster.Compute;
using Cluster.Compute.Data;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;

namespace Cluster.WorkerSilo;

/// <summary>A worker's shard: the samples of its index ranges, and the map from training-set index to local row.</summary>
internal sealed class ShardStore
{
    private readonly IndexRange[] _ranges;
    private readonly int[] _rangeOffsets;
    private readonly int _count;
    private readonly int _featureCount;
    private readonly int _outputWidth;
    private readonly int _classCount;
    // The shard's own copy, allocated when the first samples arrive; none when it reads the coordinator's set in place.
    private float[] _features = [];
    private int[]? _labels;
    private float[]? _targets;
    private bool[] _filled = [];
    private int _filledCount;
    private Dataset? _data;
    private Dataset? _inPlace;
    private bool _allocated;

    public ShardStore(ShardData first, Sequential model)
    {
        Generation = first.Generation;
        _ranges = [.. first.Ranges];
        _rangeOffsets = new int[_ranges.Length];
        var total = 0L;
        for (var i = 0; i < _ranges.Length; i++)
        {
            if (_ranges[i].Start < 0 || _ranges[i].Count < 0 || (i > 0 && _ranges[i].Start < _ranges[i - 1].Start + _ranges[i - 1].Count))
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "Shard ranges must be non-negative, sorted and disjoint.");
            }

            _rangeOffsets[i] = (int)total;
            total += _ranges[i].Count;
        }

        if (total > int.MaxValue / Math.Max(1, model.InputSize))
        {
            throw new GrpcStatusException(GrpcStatusCode.ResourceExhausted, $"A shard of {total} samples is too large.");
        }

        _count = (int)total;
        _featureCount = first.LoadLocally ? model.InputSize : first.FeatureCount;
        _outputWidth = first.LoadLocally ? model.OutputSize : first.OutputWidth;
        _classCount = first.ClassCount;
        if (_featureCount != model.InputSize)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"The shard has {_featureCount} features per sample; the model takes {model.InputSize}.");
        }
    }

    public long Generation { get; }

    /// <summary>Samples in the shard.</summary>
    public int Count => _count;

    /// <summary>Whether the shard reads its rows from a shared training set in place.</summary>
    public bool InPlace => _inPlace is not null;

    public Dataset Data => _data ?? throw new InvalidOperationException("The shard is not complete.");

    /// <summary>Local row of training-set index <paramref name="index"/>; INVALID_ARGUMENT when it is not in the shard.</summary>
    public int LocalRow(int index)
    {
        var lo = 0;
        var hi = _ranges.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var r = _ranges[mid];
            if (index < r.Start)
            {
                hi = mid - 1;
            }
            else if (index >= r.Start + r.Count)
            {
                lo = mid + 1;
            }
            else
            {
                // Read in place, a sample's row is its index in the coordinator's set.
                return _inPlace is null ? _rangeOffsets[mid] + index - r.Start : index;
            }
        }

        throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Sample {index} is not in this worker's shard.");
    }

    public void Add(ShardData chunk)
    {
        if (chunk.Count < 0 || chunk.FeatureCount != _featureCount || chunk.ClassCount != _classCount || (chunk.Count > 0 && chunk.OutputWidth != _outputWidth))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A shard chunk disagrees with its generation's shape.");
        }

        Allocate();
        var n = chunk.Count;
        var bytesPerValue = chunk.Encoding == ShardData.Types.Encoding.Uint8Div255 ? 1 : 4;
        if (chunk.Features.Length != (long)n * _featureCount * bytesPerValue)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"A shard chunk of {n} samples carries {chunk.Features.Length} feature bytes.");
        }

        var features = chunk.Features.Span;
        var labels = MemoryMarshal.Cast<byte, int>(chunk.Labels.Span);
        var targets = MemoryMarshal.Cast<byte, float>(chunk.Targets.Span);
        if ((_labels is not null && labels.Length != n) || (_targets is not null && targets.Length != n * _outputWidth))
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "A shard chunk's labels or targets do not match its sample count.");
        }

        for (var i = 0; i < n; i++)
        {
            var row = LocalRow(chunk.First + i);
            var dst = _features.AsSpan(row * _featureCount, _featureCount);
            if (bytesPerValue == 1)
            {
                var src = features.Slice(i * _featureCount, _featureCount);
                for (var j = 0; j < dst.Length; j++)
                {
                    dst[j] = src[j] / 255f;
                }
            }
            else
            {
                MemoryMarshal.Cast<byte, float>(features.Slice(i * _featureCount * 4, _featureCount * 4)).CopyTo(dst);
            }

            if (_labels is not null)
            {
                if ((uint)labels[i] >= (uint)_classCount)
                {
                    throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Label {labels[i]} is outside 0..{_classCount - 1}.");
                }

                _labels[row] = labels[i];
            }
            else
            {
                targets.Slice(i * _outputWidth, _outputWidth).CopyTo(_targets.AsSpan(row * _outputWidth, _outputWidth));
            }

            if (!_filled[row])
            {
                _filled[row] = true;
                _filledCount++;
            }
        }
    }

    public void LoadLocal(string directory, string dataset)
    {
        if (!string.Equals(dataset, "mnist", StringComparison.OrdinalIgnoreCase))
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"This worker can only load MNIST locally, not '{dataset}'.");
        }

        Allocate();
        // The rows of the shard only, read range by range and scaled as they are read: reading the whole images file
        // took 47 MB at each re-plan (scaling it all first, 188 MB more) for a worker that may hold a tenth of it.
        var (images, labels) = Mnist.OpenTrain(directory);
        using (images)
        {
            var width = images.Rows * images.Columns;
            if (width != _featureCount)
            {
                throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, $"The local training images have {width} pixels each; the model takes {_featureCount} inputs.");
            }

            if (_ranges.Length > 0 && (long)_ranges[^1].Start + _ranges[^1].Count > images.Count)
            {
                throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Shard index {(long)_ranges[^1].Start + _ranges[^1].Count - 1} is beyond the {images.Count} local samples.");
            }

            // A few hundred images at a time: the ranges are sorted, so the file is read front to back once.
            const int chunk = 256;
            var pixels = new byte[chunk * width];
            for (var r = 0; r < _ranges.Length; r++)
            {
                var range = _ranges[r];
                for (var done = 0; done < range.Count; done += chunk)
                {
                    var n = Math.Min(chunk, range.Count - done);
                    var start = range.Start + done;
                    images.Read(start, n, pixels.AsSpan(0, n * width));
                    var row = _rangeOffsets[r] + done;
                    Mnist.ScalePixels(pixels.AsSpan(0, n * width), _features.AsSpan(row * _featureCount, n * _featureCount));
                    for (var i = 0; i < n; i++)
                    {
                        _labels![row + i] = labels[start + i];
                        _filled[row + i] = true;
                    }
                }
            }

            images.Finish();
        }

        _filledCount = _count;
    }

    /// <summary>
    /// Takes the shard's rows from <paramref name="train"/> where they lie: an in-process worker's copy of the
    /// coordinator's own training set (the same samples it would be sent), so nothing is encoded, sent or copied.
    /// </summary>
    public void UseInPlace(Dataset train)
    {
        if (train.FeatureCount != _featureCount || train.ClassCount != _classCount || (_classCount == 0 && train.TargetCount != _outputWidth))
        {
            throw new GrpcStatusException(GrpcStatusCode.FailedPrecondition, "The training set this worker shares with its coordinator does not have the shard's shape.");
        }

        if (_ranges.Length > 0 && (long)_ranges[^1].Start + _ranges[^1].Count > train.Count)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"Shard index {(long)_ranges[^1].Start + _ranges[^1].Count - 1} is beyond the {train.Count} samples of the shared training set.");
        }

        _inPlace = train;
        _filledCount = _count;
    }

    public void Complete()
    {
        if (_filledCount != _count)
        {
            throw new GrpcStatusException(GrpcStatusCode.DataLoss, $"The shard ended with {_filledCount} of {_count} samples.");
        }

        if (_inPlace is not null)
        {
            _data = _inPlace;
            return;
        }

        Allocate();
        _data = _labels is not null
            ? new Dataset("shard", _featureCount, _features, _labels, _classCount)
            : new Dataset("shard", _featureCount, _features, null, 0, _targets, _outputWidth);
    }

    private void Allocate()
    {
        if (_inPlace is not null)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, "Samples arrived for a shard that reads the shared training set in place.");
        }

        if (_allocated)
        {
            return;
        }

        _allocated = true;

        _features = new float[_count * _featureCount];
        if (_classCount > 0)
        {
            _labels = new int[_count];
        }
        else
        {
            _targets = new float[_count * _outputWidth];
        }

        _filled = new bool[_count];
    }
}
