"""Services of the API this agent does not serve yet: every RPC answers UNIMPLEMENTED
with a message naming the service, instead of the generated stubs' bare error."""

from __future__ import annotations

from typing import Any

import grpc

from joblet.api import joblet_pb2 as pb

PENDING_SERVICES = ("VolumeService", "MonitoringService", "RuntimeService")


def handler(service: str) -> grpc.GenericRpcHandler:
    desc = pb.DESCRIPTOR.services_by_name[service]
    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for m in desc.methods:
        message = f"{service}.{m.name} is not available on this agent yet"

        async def unary(
            request: Any, context: grpc.aio.ServicerContext[Any, Any], _m: str = message
        ) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, _m)

        async def streaming(
            request: Any, context: grpc.aio.ServicerContext[Any, Any], _m: str = message
        ) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, _m)
            yield  # pragma: no cover - makes this an async generator

        req_cls = getattr(pb, m.input_type.name)
        resp_cls = getattr(pb, m.output_type.name)
        if m.server_streaming:
            methods[m.name] = grpc.unary_stream_rpc_method_handler(
                streaming, req_cls.FromString, resp_cls.SerializeToString
            )
        else:
            methods[m.name] = grpc.unary_unary_rpc_method_handler(
                unary, req_cls.FromString, resp_cls.SerializeToString
            )
    return grpc.method_handlers_generic_handler(f"joblet.{service}", methods)
