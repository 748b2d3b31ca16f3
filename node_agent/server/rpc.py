"""The one place where callers are authorized and typed errors become gRPC statuses.

Every servicer method is wrapped by `unary` or `stream` with the role it needs. Roles come
from the client certificate's OU (`admin` may do everything, `viewer` may only read);
without TLS (loopback or a unix socket) every caller is admin. A `JobletError` becomes its
status code with its message; anything unexpected is logged and answered INTERNAL
without leaking internals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from node_agent.errors import JobletError, PermissionDenied

log = logging.getLogger(__name__)
Role = Literal["admin", "viewer"]
ROLES: dict[str, int] = {"viewer": 1, "admin": 2}

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Authorizing(Protocol):
    tls: bool


@functools.lru_cache(maxsize=256)
def role_from_pem(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    ous = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    for role in ("admin", "viewer"):
        if role in ous:
            return role
    raise PermissionDenied(
        "the client certificate carries no Joblet role: its subject needs OU=admin or OU=viewer"
    )


def caller_role(context: grpc.aio.ServicerContext[Any, Any], tls: bool) -> str:
    if not tls:
        return "admin"
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        raise PermissionDenied("a client certificate is required")
    return role_from_pem(bytes(pems[0]))


def authorize(context: grpc.aio.ServicerContext[Any, Any], tls: bool, needed: Role) -> None:
    role = caller_role(context, tls)
    if ROLES[role] < ROLES[needed]:
        raise PermissionDenied(f"role {role!r} may not do this; it needs {needed!r}")


def _code(err: JobletError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code_name, grpc.StatusCode.INTERNAL)


UnaryMethod = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]
StreamMethod = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]


def unary(role: Role) -> Callable[[UnaryMethod[Req, Resp]], UnaryMethod[Req, Resp]]:
    def deco(fn: UnaryMethod[Req, Resp]) -> UnaryMethod[Req, Resp]:
        @functools.wraps(fn)
        async def wrapper(
            self: Authorizing, request: Req, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Resp:
            try:
                authorize(context, self.tls, role)
                return await fn(self, request, context)
            except JobletError as e:
                await context.abort(_code(e), e.message)
            except Exception:
                log.exception("%s failed", fn.__qualname__)
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"{fn.__name__}: internal error (see agent log)"
                )
            raise AssertionError("unreachable")

        return wrapper

    return deco


def stream(role: Role) -> Callable[[StreamMethod[Req, Resp]], StreamMethod[Req, Resp]]:
    def deco(fn: StreamMethod[Req, Resp]) -> StreamMethod[Req, Resp]:
        @functools.wraps(fn)
        async def wrapper(
            self: Authorizing, request: Req, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Resp]:
            try:
                authorize(context, self.tls, role)
                async for item in fn(self, request, context):
                    yield item
            except JobletError as e:
                await context.abort(_code(e), e.message)
            except Exception:
                log.exception("%s failed", fn.__qualname__)
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"{fn.__name__}: internal error (see agent log)"
                )

        return wrapper

    return deco
