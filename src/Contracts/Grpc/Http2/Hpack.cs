using System.Text;

namespace Cluster.Contracts.Grpc.Http2;

/// <summary>A decoded header field.</summary>
public readonly record struct HeaderField(string Name, string Value);

/// <summary>
/// HPACK (RFC 7541) for the client: a decoder with the static and dynamic tables and Huffman-coded strings, and an
/// encoder that writes every request header as a literal without indexing (so it keeps no state the server must mirror).
/// Malformed input throws <see cref="HpackException"/>, which the connection turns into COMPRESSION_ERROR.
/// </summary>
public sealed class HpackDecoder
{
    private static readonly HeaderField[] StaticTable =
    [
        new(":authority", ""), new(":method", "GET"), new(":method", "POST"), new(":path", "/"), new(":path", "/index.html"),
        new(":scheme", "http"), new(":scheme", "https"), new(":status", "200"), new(":status", "204"), new(":status", "206"),
        new(":status", "304"), new(":status", "400"), new(":status", "404"), new(":status", "500"), new("accept-charset", ""),
        new("accept-encoding", "gzip, deflate"), new("accept-language", ""), new("accept-ranges", ""), new("accept", ""),
        new("access-control-allow-origin", ""), new("age", ""), new("allow", ""), new("authorization", ""),
        new("cache-control", ""), new("content-disposition", ""), new("content-encoding", ""), new("content-language", ""),
        new("content-length", ""), new("content-location", ""), new("content-range", ""), new("content-type", ""),
        new("cookie", ""), new("date", ""), new("etag", ""), new("expect", ""), new("expires", ""), new("from", ""),
        new("host", ""), new("if-match", ""), new("if-modified-since", ""), new("if-none-match", ""), new("if-range", ""),
        new("if-unmodified-since", ""), new("last-modified", ""), new("link", ""), new("location", ""),
        new("max-forwards", ""), new("proxy-authenticate", ""), new("proxy-authorization", ""), new("range", ""),
        new("referer", ""), new("refresh", ""), new("retry-after", ""), new("server", ""), new("set-cookie", ""),
        new("strict-transport-security", ""), new("transfer-encoding", ""), new("user-agent", ""), new("vary", ""),
        new("via", ""), new("www-authenticate", ""),
    ];

    private readonly List<HeaderField> _dynamic = []; // newest first
    private readonly int _settingsMaxSize;
    private int _maxSize;
    private int _size;

    /// <summary>Creates a decoder whose dynamic table may grow to <paramref name="maxTableSize"/> (our SETTINGS_HEADER_TABLE_SIZE).</summary>
    public HpackDecoder(int maxTableSize = 4096)
    {
        _settingsMaxSize = maxTableSize;
        _maxSize = maxTableSize;
    }

    /// <summary>Decodes one complete header block; the block's fields are appended to <paramref name="fields"/>.</summary>
    public void Decode(ReadOnlySpan<byte> block, List<HeaderField> fields, int maxListSize = 64 * 1024)
    {
        var p = 0;
        var listSize = 0;
        var fieldSeen = false;
        while (p < block.Length)
        {
            var b = block[p];
            HeaderField field;
            if ((b & 0x80) != 0)
            {
                field = Lookup(ReadInteger(block, ref p, 7));
            }
            else if ((b & 0xE0) == 0x20)
            {
                // A dynamic table size update is allowed only at the start of a block.
                if (fieldSeen)
                {
                    throw new HpackException("Dynamic table size update after a header field.");
                }

                var size = ReadInteger(block, ref p, 5);
                if (size > _settingsMaxSize)
                {
                    throw new HpackException($"Dynamic table size update to {size} exceeds the advertised {_settingsMaxSize}.");
                }

                _maxSize = size;
                Evict(0);
                continue;
            }
            else
            {
                var incremental = (b & 0xC0) == 0x40;
                var index = ReadInteger(block, ref p, incremental ? 6 : 4);
                var name = index == 0 ? ReadString(block, ref p) : Lookup(index).Name;
                var value = ReadString(block, ref p);
                field = new HeaderField(name, value);
                if (incremental)
                {
                    Add(field);
                }
            }

            fieldSeen = true;
            listSize += field.Name.Length + field.Value.Length + 32;
            if (listSize > maxListSize)
            {
                throw new HpackException($"Header list larger than {maxListSize} bytes.");
            }

            fields.Add(field);
        }
    }

    private HeaderField Lookup(int index)
    {
        if (index >= 1 && index <= StaticTable.Length)
        {
            return StaticTable[index - 1];
        }

        var d = index - StaticTable.Length - 1;
        return index > 0 && d < _dynamic.Count ? _dynamic[d] : throw new HpackException($"Header index {index} is not in the table.");
    }

    private void Add(HeaderField field)
    {
        var size = field.Name.Length + field.Value.Length + 32;
        if (size > _maxSize)
        {
            // An entry larger than the table empties it and is not added (RFC 7541 section 4.4).
            _dynamic.Clear();
            _size = 0;
            return;
        }

        Evict(size);
        _dynamic.Insert(0, field);
        _size += size;
    }

    private void Evict(int room)
    {
        while (_size + room > _maxSize && _dynamic.Count > 0)
        {
            var last = _dynamic[^1];
            _size -= last.Name.Length + last.Value.Length + 32;
            _dynamic.RemoveAt(_dynamic.Count - 1);
        }
    }

    /// <summary>An HPACK integer with an N-bit prefix.</summary>
    public static int ReadInteger(ReadOnlySpan<byte> block, ref int p, int prefixBits)
    {
        if (p >= block.Length)
        {
            throw new HpackException("Truncated integer.");
        }

        var mask = (1 << prefixBits) - 1;
        var value = block[p++] & mask;
        if (value < mask)
        {
            return value;
        }

        for (var shift = 0; ; shift += 7)
        {
            if (p >= block.Length || shift > 21)
            {
                throw new HpackException("Truncated or oversized integer.");
            }

            var b = block[p++];
            value += (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
    }

    private static string ReadString(ReadOnlySpan<byte> block, ref int p)
    {
        if (p >= block.Length)
        {
            throw new HpackException("Truncated string.");
        }

        var huffman = (block[p] & 0x80) != 0;
        var length = ReadInteger(block, ref p, 7);
        if (length > block.Length - p)
        {
            throw new HpackException("String longer than its header block.");
        }

        var bytes = block.Slice(p, length);
        p += length;
        return huffman ? HpackHuffman.Decode(bytes) : Encoding.Latin1.GetString(bytes);
    }
}

/// <summary>Writes request header blocks: indexed entries for the few static pairs used, literals otherwise.</summary>
public static class HpackEncoder
{
    /// <summary>Appends one field as "literal without indexing, new name" (or a static index for exact matches).</summary>
    public static void Write(List<byte> block, string name, string value)
    {
        switch (name, value)
        {
            case (":method", "POST"):
                block.Add(0x83);
                return;
            case (":scheme", "http"):
                block.Add(0x86);
                return;
            case (":scheme", "https"):
                block.Add(0x87);
                return;
        }

        block.Add(0x00);
        WriteString(block, name);
        WriteString(block, value);
    }

    private static void WriteString(List<byte> block, string s)
    {
        var bytes = Encoding.Latin1.GetBytes(s);
        WriteInteger(block, bytes.Length, 7, 0x00);
        block.AddRange(bytes);
    }

    /// <summary>An HPACK integer with an N-bit prefix; <paramref name="flags"/> fills the bits above it.</summary>
    public static void WriteInteger(List<byte> block, int value, int prefixBits, byte flags)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            block.Add((byte)(flags | value));
            return;
        }

        block.Add((byte)(flags | max));
        value -= max;
        while (value >= 0x80)
        {
            block.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        block.Add((byte)value);
    }
}

/// <summary>The canonical Huffman code of RFC 7541 Appendix B, decoded from its code lengths.</summary>
public static class HpackHuffman
{
    // Code length of each symbol 0..256 (256 = EOS): '0'..'9' mean 5..14 bits, 'A'.. mean 15.. bits.
    private const string Lengths =
        "8INNNNNNNJPNNPNNNNNNNNPNNNNNNNNN1557813655363111000111111123A1758122222222222222222222223238E891A01010111022111012100122222A698N" +
        "FHFFHHHIHIIIIIJIJJHIJIIIIGHIHIIJHGFHHIIGIHHJGHIIGGHGIHIIFHHHIHHILLFEHIHKLLLMMLJKEGLMMLMJGGLLNMMMFJFGHGGIHHKKJJLILMLLMMMMMNMMMMMLP";

    private const int MaxLength = 30;

    // For each length L: the first canonical code of that length, how many codes it has, and where its symbols start.
    private static readonly int[] FirstCode = new int[MaxLength + 2];
    private static readonly int[] Count = new int[MaxLength + 2];
    private static readonly int[] Offset = new int[MaxLength + 2];
    private static readonly int[] Symbols = new int[257];

    static HpackHuffman()
    {
        var lengths = new int[257];
        for (var s = 0; s < 257; s++)
        {
            var c = Lengths[s];
            lengths[s] = c <= '9' ? c - '0' + 5 : c - 'A' + 15;
            Count[lengths[s]]++;
        }

        var code = 0;
        var index = 0;
        for (var l = 1; l <= MaxLength; l++)
        {
            FirstCode[l] = code;
            Offset[l] = index;
            for (var s = 0; s < 257; s++)
            {
                if (lengths[s] == l)
                {
                    Symbols[index++] = s;
                }
            }

            code = (code + Count[l]) << 1;
        }
    }

    /// <summary>Decodes a Huffman-coded string; padding must be at most 7 one-bits and EOS must not appear.</summary>
    public static string Decode(ReadOnlySpan<byte> input)
    {
        var output = new StringBuilder(input.Length * 8 / 5);
        var code = 0;
        var length = 0;
        var allOnes = true;
        foreach (var b in input)
        {
            for (var bit = 7; bit >= 0; bit--)
            {
                var v = (b >> bit) & 1;
                code = (code << 1) | v;
                length++;
                allOnes &= v == 1;
                if (length > MaxLength)
                {
                    throw new HpackException("Invalid Huffman code.");
                }

                var k = code - FirstCode[length];
                if (k >= 0 && k < Count[length])
                {
                    var symbol = Symbols[Offset[length] + k];
                    if (symbol == 256)
                    {
                        throw new HpackException("EOS symbol inside a Huffman-coded string.");
                    }

                    output.Append((char)symbol);
                    code = 0;
                    length = 0;
                    allOnes = true;
                }
            }
        }

        if (length > 7 || !allOnes)
        {
            throw new HpackException("Invalid Huffman padding.");
        }

        return output.ToString();
    }
}

/// <summary>Malformed HPACK input.</summary>
public sealed class HpackException(string message) : Exception(message);
