"""Calls cluster.v1.Coordinator/GetStatus with Python grpcio, messages built from a protoc descriptor set."""
import json, sys
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
pool = descriptor_pool.DescriptorPool()
for f in fds.file:
    pool.Add(f)


def message_class(name):
    descriptor = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


Request = message_class("cluster.v1.StatusRequest")
Reply = message_class("cluster.v1.StatusReply")
channel = grpc.insecure_channel(sys.argv[2], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary("/cluster.v1.Coordinator/GetStatus",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=Reply.FromString)
reply = call(Request(), timeout=20)
print(json.dumps({"state": reply.state, "epochs": reply.epochs, "workers": reply.workers, "runId": reply.run_id}))
