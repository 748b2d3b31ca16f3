"""Typed errors of the agent, one small tree mapped to gRPC status codes in one place.

Every layer below the servicers raises these (never grpc objects), so the jobs and
isolation code stays free of transport concerns and the mapping lives in
`node_agent.server.rpc`.
"""

from __future__ import annotations


class JobletError(Exception):
    """Base class: a message a person can act on."""

    code_name = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(JobletError):
    code_name = "INVALID_ARGUMENT"


class NotFound(JobletError):
    code_name = "NOT_FOUND"


class FailedPrecondition(JobletError):
    code_name = "FAILED_PRECONDITION"


class AlreadyExists(JobletError):
    code_name = "ALREADY_EXISTS"


class PermissionDenied(JobletError):
    code_name = "PERMISSION_DENIED"


class Unimplemented(JobletError):
    code_name = "UNIMPLEMENTED"


class Unavailable(JobletError):
    code_name = "UNAVAILABLE"


class LaunchFailed(JobletError):
    """The job could not be started (isolation or exec failed); recorded as FAILED."""

    code_name = "INTERNAL"
