"""Generated protobuf/gRPC stubs (make proto)."""
