"""tests/lib/grpcstubs.py -- Python stubs for a .proto, generated at test time.

load(proto_text, name, directory) writes directory/<name>.proto, runs python3-grpc-tools' protoc
on it and imports <name>_pb2 (messages) and <name>_pb2_grpc (stubs and servicers). The name must
be unique within a pytest session: Python caches modules by name.
"""

import importlib
import sys


def load(proto_text, name, directory):
    from grpc_tools import protoc
    directory = str(directory)
    with open("%s/%s.proto" % (directory, name), "w") as f:
        f.write(proto_text)
    assert protoc.main(["protoc", "-I%s" % directory, "--python_out=%s" % directory,
                        "--grpc_python_out=%s" % directory,
                        "%s/%s.proto" % (directory, name)]) == 0
    sys.path.insert(0, directory)
    try:
        return (importlib.import_module(name + "_pb2"),
                importlib.import_module(name + "_pb2_grpc"))
    finally:
        sys.path.remove(directory)
