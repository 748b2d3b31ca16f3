"""A typed Python client for one Joblet agent: channel set-up and thin wrappers over the stubs.

The CLI and scripts use this instead of the raw stubs so that the security rule of the project
lives in one place: plaintext only to a loopback address or a unix socket, mutual TLS anywhere
else, and a clear refusal rather than a silent plaintext connection to a remote host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

import grpc

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pb_grpc
from joblet.config import NodeConfig

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ClientError(Exception):
    """The client cannot be set up (bad certificates, insecure target, ...)."""


class _StreamCall(Protocol[T_co]):
    def __iter__(self) -> Iterator[T_co]: ...
    def cancel(self) -> bool: ...


class ServerStream(Generic[T]):
    """The messages of a server-streaming call, which the caller may cancel at any time."""

    def __init__(self, call: _StreamCall[T]) -> None:
        self._call = call

    def __iter__(self) -> Iterator[T]:
        return iter(self._call)

    def cancel(self) -> None:
        self._call.cancel()


def channel_options(node: NodeConfig) -> list[tuple[str, str | int]]:
    options: list[tuple[str, str | int]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    if node.server_name:
        options.append(("grpc.ssl_target_name_override", node.server_name))
    return options


def open_channel(node: NodeConfig) -> grpc.Channel:
    """Connect to ``node``: mutual TLS when certificates are configured, else plaintext
    (allowed only for loopback addresses and unix sockets)."""
    options = channel_options(node)
    if node.tls is None:
        if not node.is_local:
            raise ClientError(
                f"node {node.name!r} ({node.address}) is not a loopback address or unix "
                "socket: refusing plaintext; configure cert, key and ca for it"
            )
        return grpc.insecure_channel(node.address, options=options)
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=node.tls.ca.read_bytes(),
            private_key=node.tls.key.read_bytes(),
            certificate_chain=node.tls.cert.read_bytes(),
        )
    except OSError as err:
        raise ClientError(
            f"node {node.name!r}: cannot read TLS file {err.filename}: {err.strerror}"
        ) from None
    return grpc.secure_channel(node.address, credentials, options=options)


class JobletClient:
    """One agent's API. Each method is a single RPC; errors surface as ``grpc.RpcError``."""

    def __init__(self, channel: grpc.Channel, timeout: float | None = 30.0) -> None:
        self.channel = channel
        self.timeout = timeout
        self.jobs = pb_grpc.JobServiceStub(channel)
        self.networks = pb_grpc.NetworkServiceStub(channel)
        self.volumes = pb_grpc.VolumeServiceStub(channel)
        self.monitoring = pb_grpc.MonitoringServiceStub(channel)
        self.runtimes = pb_grpc.RuntimeServiceStub(channel)

    @classmethod
    def connect(cls, node: NodeConfig, timeout: float | None = 30.0) -> JobletClient:
        return cls(open_channel(node), timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> JobletClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Jobs -------------------------------------------------------------------------------------

    def run_job(self, request: pb.RunJobRequest) -> pb.RunJobResponse:
        return self.jobs.RunJob(request, timeout=self.timeout)

    def job_status(self, uuid: str) -> pb.GetJobStatusResponse:
        return self.jobs.GetJobStatus(pb.GetJobStatusRequest(uuid=uuid), timeout=self.timeout)

    def list_jobs(self) -> list[pb.Job]:
        return list(self.jobs.ListJobs(pb.EmptyRequest(), timeout=self.timeout).jobs)

    def stop_job(self, uuid: str) -> pb.StopJobResponse:
        return self.jobs.StopJob(pb.StopJobRequest(uuid=uuid), timeout=self.timeout)

    def cancel_job(self, uuid: str) -> pb.CancelJobResponse:
        return self.jobs.CancelJob(pb.CancelJobRequest(uuid=uuid), timeout=self.timeout)

    def delete_job(self, uuid: str) -> pb.DeleteJobResponse:
        return self.jobs.DeleteJob(pb.DeleteJobRequest(uuid=uuid), timeout=self.timeout)

    def delete_all_jobs(self) -> pb.DeleteAllJobsResponse:
        return self.jobs.DeleteAllJobs(pb.DeleteAllJobsRequest(), timeout=self.timeout)

    def job_logs(self, uuid: str) -> ServerStream[pb.DataChunk]:
        """Replay of the job's output, then its live output until the job ends (no timeout)."""
        return ServerStream(self.jobs.GetJobLogs(pb.GetJobLogsRequest(uuid=uuid)))

    # Workflows --------------------------------------------------------------------------------

    def run_workflow(self, request: pb.RunWorkflowRequest) -> pb.RunWorkflowResponse:
        return self.jobs.RunWorkflow(request, timeout=self.timeout)

    def workflow_status(self, uuid: str) -> pb.GetWorkflowStatusResponse:
        request = pb.GetWorkflowStatusRequest(workflow_uuid=uuid)
        return self.jobs.GetWorkflowStatus(request, timeout=self.timeout)

    def list_workflows(self, include_completed: bool) -> list[pb.WorkflowInfo]:
        request = pb.ListWorkflowsRequest(include_completed=include_completed)
        return list(self.jobs.ListWorkflows(request, timeout=self.timeout).workflows)

    def workflow_jobs(self, uuid: str) -> list[pb.WorkflowJob]:
        request = pb.GetWorkflowJobsRequest(workflow_uuid=uuid)
        return list(self.jobs.GetWorkflowJobs(request, timeout=self.timeout).jobs)

    # Networks and volumes ---------------------------------------------------------------------

    def create_network(self, name: str, cidr: str) -> pb.CreateNetworkResponse:
        request = pb.CreateNetworkRequest(name=name, cidr=cidr)
        return self.networks.CreateNetwork(request, timeout=self.timeout)

    def list_networks(self) -> list[pb.Network]:
        return list(self.networks.ListNetworks(pb.EmptyRequest(), timeout=self.timeout).networks)

    def remove_network(self, name: str) -> pb.RemoveNetworkResponse:
        request = pb.RemoveNetworkRequest(name=name)
        return self.networks.RemoveNetwork(request, timeout=self.timeout)

    def create_volume(self, name: str, size: str, kind: str) -> pb.CreateVolumeResponse:
        request = pb.CreateVolumeRequest(name=name, size=size, type=kind)
        return self.volumes.CreateVolume(request, timeout=self.timeout)

    def list_volumes(self) -> list[pb.Volume]:
        return list(self.volumes.ListVolumes(pb.EmptyRequest(), timeout=self.timeout).volumes)

    def remove_volume(self, name: str) -> pb.RemoveVolumeResponse:
        request = pb.RemoveVolumeRequest(name=name)
        return self.volumes.RemoveVolume(request, timeout=self.timeout)

    # Monitoring -------------------------------------------------------------------------------

    def system_status(self) -> pb.SystemStatusResponse:
        return self.monitoring.GetSystemStatus(pb.EmptyRequest(), timeout=self.timeout)

    def stream_metrics(
        self, interval_seconds: int, metric_types: list[str] | None = None
    ) -> ServerStream[pb.SystemMetricsResponse]:
        request = pb.StreamMetricsRequest(
            interval_seconds=interval_seconds, metric_types=metric_types or []
        )
        return ServerStream(self.monitoring.StreamSystemMetrics(request))

    # Runtimes ---------------------------------------------------------------------------------

    def list_runtimes(self) -> list[pb.RuntimeInfo]:
        return list(self.runtimes.ListRuntimes(pb.EmptyRequest(), timeout=self.timeout).runtimes)

    def runtime_info(self, runtime: str) -> pb.GetRuntimeInfoResponse:
        request = pb.GetRuntimeInfoRequest(runtime=runtime)
        return self.runtimes.GetRuntimeInfo(request, timeout=self.timeout)

    def test_runtime(self, runtime: str) -> pb.TestRuntimeResponse:
        # A runtime's self-test runs a process on the agent: allow it more time.
        request = pb.TestRuntimeRequest(runtime=runtime)
        return self.runtimes.TestRuntime(request, timeout=None)

    def install_runtime_from_github(
        self, request: pb.InstallRuntimeRequest
    ) -> ServerStream[pb.RuntimeInstallationChunk]:
        return ServerStream(self.runtimes.StreamingInstallRuntimeFromGithub(request))

    def install_runtime_from_local(
        self, request: pb.InstallRuntimeFromLocalRequest
    ) -> ServerStream[pb.RuntimeInstallationChunk]:
        return ServerStream(self.runtimes.StreamingInstallRuntimeFromLocal(request))

    def validate_runtime_spec(self, spec: str) -> pb.ValidateRuntimeSpecResponse:
        request = pb.ValidateRuntimeSpecRequest(runtime_spec=spec)
        return self.runtimes.ValidateRuntimeSpec(request, timeout=self.timeout)

    def remove_runtime(self, runtime: str) -> pb.RemoveRuntimeResponse:
        request = pb.RemoveRuntimeRequest(runtime=runtime)
        return self.runtimes.RemoveRuntime(request, timeout=self.timeout)
