using System.Buffers;
using System.IO.Pipelines;
using Cluster.Contracts.Grpc;
using Cluster.Contracts.V1;
using Google.Protobuf;

namespace Cluster.Contracts.Tests;

public sealed class WireSplitterTests
{
    private static GradientResult RandomGradient(Random r, int values) => new()
    {
        Step = r.NextInt64(0, long.MaxValue),
        GradientSum = TensorCodec.FromFloats([.. Enumerable.Range(0, values).Select(_ => (float)(r.NextDouble() * 2 - 1))]),
        Count = r.Next(0, 5000),
        LossSum = r.NextDouble() * 100,
        Correct = r.Next(0, 100) == 0 ? 0 : r.NextInt64(0, 5000),
        SquaredErrorSum = r.Next(0, 2) == 0 ? 0 : r.NextDouble(),
        ComputeSeconds = r.NextDouble(),
        CodecSeconds = r.Next(0, 3) == 0 ? 0 : r.NextDouble(),
    };

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 31)]
    [InlineData(3, 4096)]
    [InlineData(4, 109_386)]
    public void Gradient_SplitsIntoTheParsersFieldsAndTheTensor(int seed, int values)
    {
        var r = new Random(seed);
        for (var i = 0; i < 20; i++)
        {
            var g = RandomGradient(r, values);
            var bytes = new WorkerMessage { Gradient = g }.ToByteArray();
            var rest = Array.Empty<byte>();
            Assert.True(WireSplitter.TrySplit(bytes, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out var length, out var tensor));
            var header = GradientResult.Parser.ParseFrom(rest.AsSpan(0, length));
            Assert.True(bytes.AsSpan(tensor).SequenceEqual(g.GradientSum.Span));
            Assert.Equal(ByteString.Empty, header.GradientSum);
            header.GradientSum = ByteString.CopyFrom(bytes.AsSpan(tensor));
            Assert.Equal(g, header);
        }
    }

    [Fact]
    public void Plan_SplitsWeightsAndKeepsIndicesAndUnknownFields()
    {
        var plan = new StepPlan { Step = 12, Epoch = 3, ShardGeneration = 2, Weights = TensorCodec.FromFloats([1f, 2f, 3f]), Indices = TensorCodec.FromInts([5, 9]) };
        var inner = plan.ToByteArray();
        // An unknown field (number 99, varint 7) appended, as a newer peer might send; and the weights a second time, which wins.
        var extra = new byte[] { 0x98, 0x06, 7 };
        var again = new StepPlan { Weights = TensorCodec.FromFloats([4f, 5f]) }.ToByteArray();
        var body = inner.Concat(extra).Concat(again).ToArray();
        var message = new byte[] { 0x1A }.Concat(Varint(body.Length)).Concat(body).ToArray();
        var expected = CoordinatorMessage.Parser.ParseFrom(message).Step;

        var rest = Array.Empty<byte>();
        Assert.True(WireSplitter.TrySplit(message, CoordinatorMessage.StepFieldNumber, StepPlan.WeightsFieldNumber, ref rest, out var length, out var tensor));
        var header = StepPlan.Parser.ParseFrom(rest.AsSpan(0, length));
        header.Weights = ByteString.CopyFrom(message.AsSpan(tensor));
        Assert.Equal(expected, header);
        Assert.Equal(TensorCodec.FromFloats([4f, 5f]), header.Weights);
    }

    [Fact]
    public void OtherMessages_AreLeftToTheParser()
    {
        var rest = Array.Empty<byte>();
        var heartbeat = new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 3 } }.ToByteArray();
        Assert.False(WireSplitter.TrySplit(heartbeat, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out _, out _));
        // proto3 leaves an empty tensor off the wire: nothing to split, the parser handles it.
        var empty = new WorkerMessage { Gradient = new GradientResult { Step = 1, Count = 2 } }.ToByteArray();
        Assert.False(WireSplitter.TrySplit(empty, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out _, out _));
        // Two top-level fields (the parser merges them): not split.
        var one = new WorkerMessage { Gradient = new GradientResult { Step = 1, GradientSum = TensorCodec.FromFloats([1f]) } }.ToByteArray();
        Assert.False(WireSplitter.TrySplit([.. one, .. one], WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out _, out _));
    }

    [Fact]
    public void Malformed_IsNeverSplit_AndNeverThrows()
    {
        var good = new WorkerMessage { Gradient = RandomGradient(new Random(9), 64) }.ToByteArray();
        var r = new Random(5);
        var rest = Array.Empty<byte>();
        for (var cut = 0; cut < good.Length; cut++)
        {
            Assert.False(WireSplitter.TrySplit(good.AsSpan(0, cut), WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out _, out _));
        }

        for (var i = 0; i < 2000; i++)
        {
            var noise = new byte[r.Next(0, 64)];
            r.NextBytes(noise);
            if (WireSplitter.TrySplit(noise, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out var length, out var tensor))
            {
                // Whatever it splits must be what the parser reads from the same bytes.
                var parsed = WorkerMessage.Parser.ParseFrom(noise).Gradient;
                Assert.True(parsed.GradientSum.Span.SequenceEqual(noise.AsSpan(tensor)));
                Assert.Equal(parsed.Step, GradientResult.Parser.ParseFrom(rest.AsSpan(0, length)).Step);
            }
        }
    }

    [Fact]
    public async Task FrameReader_ReusesItsBuffer_AndReportsTruncation()
    {
        var stream = new MemoryStream();
        await GrpcFraming.WriteAsync(stream, new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 1 } }, CancellationToken.None);
        await GrpcFraming.WriteAsync(stream, new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 2 } }, CancellationToken.None);
        stream.Position = 0;
        var reader = new FrameReader(1 << 20);
        var first = await reader.ReadAsync(stream, CancellationToken.None);
        Assert.Equal(1, WorkerMessage.Parser.ParseFrom(first!.Value.Span).Heartbeat.Sequence);
        var second = await reader.ReadAsync(stream, CancellationToken.None);
        Assert.Equal(2, WorkerMessage.Parser.ParseFrom(second!.Value.Span).Heartbeat.Sequence);
        Assert.Null(await reader.ReadAsync(stream, CancellationToken.None));

        var truncated = new MemoryStream([0, 0, 0, 0, 10, 1, 2]);
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(async () => await new FrameReader(1 << 20).ReadAsync(truncated, CancellationToken.None));
        Assert.Equal(GrpcStatusCode.Internal, ex.Status);
        var huge = new MemoryStream([0, 0, 0x10, 0, 0]);
        ex = await Assert.ThrowsAsync<GrpcStatusException>(async () => await new FrameReader(1024).ReadAsync(huge, CancellationToken.None));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, ex.Status);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(40_000)]
    public async Task WriteWithTensor_IsTheSameMessageForAnyParser(int values)
    {
        var r = new Random(values);
        var full = RandomGradient(r, values);
        var header = full.Clone();
        header.GradientSum = ByteString.Empty;
        var stream = new MemoryStream();
        var written = await GrpcFraming.WriteWithTensorAsync(stream, WorkerMessage.GradientFieldNumber, header, GradientResult.GradientSumFieldNumber, full.GradientSum.Memory, CancellationToken.None);
        Assert.Equal(stream.Length, written);
        stream.Position = 0;
        var parsed = await GrpcFraming.ReadAsync(stream, WorkerMessage.Parser, 1 << 20, CancellationToken.None);
        Assert.Equal(full, parsed!.Gradient);

        // And the splitter finds the tensor in it.
        var frame = stream.ToArray().AsSpan(GrpcFraming.HeaderSize);
        var rest = Array.Empty<byte>();
        Assert.True(WireSplitter.TrySplit(frame, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref rest, out var length, out var tensor));
        Assert.True(frame[tensor].SequenceEqual(full.GradientSum.Span));
        Assert.Equal(header, GradientResult.Parser.ParseFrom(rest.AsSpan(0, length)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(64)]
    [InlineData(65_536)]
    public void Sequence_SplitsLikeTheSpan_WhateverTheSegments(int segment)
    {
        // Kestrel hands a message over in pool blocks: every field may straddle a block boundary.
        var r = new Random(segment);
        var messages = new List<byte[]>
        {
            new WorkerMessage { Gradient = RandomGradient(r, 40) }.ToByteArray(),
            new WorkerMessage { Gradient = RandomGradient(r, 109_386) }.ToByteArray(),
            new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 4 } }.ToByteArray(),
        };
        var good = messages[0];
        for (var cut = 0; cut < good.Length; cut += 7)
        {
            messages.Add(good[..cut]);
        }

        for (var i = 0; i < 300; i++)
        {
            var noise = new byte[r.Next(1, 48)];
            r.NextBytes(noise);
            noise[0] = (byte)(i % 3 == 0 ? 0x12 : noise[0]);
            messages.Add(noise);
        }

        foreach (var bytes in messages)
        {
            var spanRest = Array.Empty<byte>();
            var sequenceRest = Array.Empty<byte>();
            var expected = WireSplitter.TrySplit(bytes, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref spanRest, out var spanLength, out var range);
            var sequence = Segmented.Split(bytes, segment);
            var actual = WireSplitter.TrySplit(sequence, WorkerMessage.GradientFieldNumber, GradientResult.GradientSumFieldNumber, ref sequenceRest, out var sequenceLength, out var tensor);
            Assert.Equal(expected, actual);
            if (expected)
            {
                Assert.True(spanRest.AsSpan(0, spanLength).SequenceEqual(sequenceRest.AsSpan(0, sequenceLength)));
                Assert.True(bytes.AsSpan(range).SequenceEqual(tensor.ToArray()));
            }
        }
    }

    [Fact]
    public async Task PipeFrameReader_ReturnsWholeMessagesInPlace_AndReportsTruncation()
    {
        var pipe = new Pipe();
        var big = new WorkerMessage { Gradient = RandomGradient(new Random(3), 100_000) };
        var small = new WorkerMessage { Heartbeat = new Heartbeat { Sequence = 7 } };
        var reader = new PipeFrameReader(pipe.Reader, 1 << 20);
        // The big frame arrives in pieces: the reader waits for all of it.
        var frame = GrpcFraming.Frame(big);
        var writes = Task.Run(async () =>
        {
            for (var at = 0; at < frame.Length; at += 50_000)
            {
                await pipe.Writer.WriteAsync(frame.AsMemory(at, Math.Min(50_000, frame.Length - at)));
            }

            await pipe.Writer.WriteAsync(GrpcFraming.Frame(small));
            await pipe.Writer.CompleteAsync();
        });
        var first = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal(big, WorkerMessage.Parser.ParseFrom(first!.Value));
        var second = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal(small, GrpcFraming.Parse(WorkerMessage.Parser, second!.Value));
        Assert.Null(await reader.ReadAsync(CancellationToken.None));
        await writes;

        async Task<GrpcStatusException> Fails(byte[] bytes, int max)
        {
            var p = new Pipe();
            await p.Writer.WriteAsync(bytes);
            await p.Writer.CompleteAsync();
            var frames = new PipeFrameReader(p.Reader, max);
            return await Assert.ThrowsAsync<GrpcStatusException>(async () => await frames.ReadAsync(CancellationToken.None));
        }

        Assert.Equal(GrpcStatusCode.Internal, (await Fails([0, 0, 0, 0, 10, 1, 2], 1 << 20)).Status);
        Assert.Equal(GrpcStatusCode.Internal, (await Fails([0, 0, 0], 1 << 20)).Status);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, (await Fails([0, 0, 0x10, 0, 0], 1024)).Status);
        Assert.Equal(GrpcStatusCode.Unimplemented, (await Fails([1, 0, 0, 0, 1, 8], 1024)).Status);
    }

    private static byte[] Varint(int value)
    {
        var bytes = new List<byte>();
        var v = (uint)value;
        while (v >= 0x80)
        {
            bytes.Add((byte)(v | 0x80));
            v >>= 7;
        }

        bytes.Add((byte)v);
        return [.. bytes];
    }
}
