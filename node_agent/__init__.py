"""The Joblet node agent: gRPC server, job lifecycle, isolation."""
