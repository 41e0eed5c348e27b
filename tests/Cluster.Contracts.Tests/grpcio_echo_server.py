"""A Python grpcio server for client interop tests: writes its port to the file named by its argument and serves
until stdin closes (60 s at most).

Methods (messages are raw bytes, so no generated code is needed):
  /test.Echo/Echo   unary: returns the request unchanged
  /test.Echo/Big    unary: returns a google.protobuf.BytesValue of N bytes (N = the request's value as ASCII)
  /test.Echo/Fail   unary: fails with INVALID_ARGUMENT and a message that needs percent-encoding
  /test.Echo/Chat   bidirectional: echoes every message, then ends with OK
"""
import os, sys, threading
from concurrent import futures
import grpc


def bytes_value(payload):
    n = len(payload)
    prefix = bytearray([0x0A])
    while True:
        b = n & 0x7F
        n >>= 7
        prefix.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(prefix) + payload


def parse_bytes_value(data):
    # field 1, wire type 2: tag, varint length, payload
    i, n, shift = 1, 0, 0
    while True:
        b = data[i]; i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    return data[i:i + n]


def echo(request, context):
    return request


def big(request, context):
    n = int(parse_bytes_value(request).decode())
    return bytes_value(bytes((i * 7) % 251 for i in range(n)))


def fail(request, context):
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input: 100% wrong \u00fc")


def chat(requests, context):
    for r in requests:
        yield r


handlers = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Big": grpc.unary_unary_rpc_method_handler(big),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                     options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(port))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait(60)
server.stop(0)
