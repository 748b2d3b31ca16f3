"""`kubectl joblet` (installed as `kubectl-joblet`): the kubectl plugin that reads what lives
on the node agents. `kubectl joblet logs JOB [-n NS] [-f]` finds the Job's node and agent
job UUID in its status and streams the output from that agent, authenticating with the
viewer certificate kept in a Secret (read-only on the agent)."""

from __future__ import annotations

import argparse
import base64
import sys
import threading
from typing import Any

import grpc
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from joblet_operator.kube import JobResource, NodeResource

IDLE_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubectl joblet", description=__doc__)
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument(
        "--tls-secret",
        default="joblet-system/joblet-viewer-tls",
        help="NAMESPACE/NAME of a Secret with tls.crt, tls.key, ca.crt for the agents",
    )
    sub = p.add_subparsers(dest="verb", required=True)
    logs = sub.add_parser("logs", help="print a Job's output; -f follows it until the job ends")
    logs.add_argument("job")
    logs.add_argument("-f", "--follow", action="store_true")
    return p.parse_args(argv)


def _secret(client: Client, ref: str) -> dict[str, bytes]:
    ns, _, name = ref.partition("/")
    secret = client.get(Secret, name, namespace=ns)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def logs(args: argparse.Namespace) -> int:
    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = Client(config=config)
    current = config.get()
    namespace = args.namespace or (current.namespace if current else None) or "default"
    try:
        job: Any = client.get(JobResource, args.job, namespace=namespace)
        status = dict(job.get("status") or {})
        if not status.get("jobUUID") or not status.get("node"):
            print(
                f"Job {namespace}/{args.job} has not been dispatched to a node yet", file=sys.stderr
            )
            return 1
        node: Any = client.get(NodeResource, status["node"])
        tls = _secret(client, args.tls_secret)
    except ApiError as e:
        print(f"error: {e.status.message}", file=sys.stderr)
        return 1
    creds = grpc.ssl_channel_credentials(tls["ca.crt"], tls["tls.key"], tls["tls.crt"])
    channel = grpc.secure_channel(node["spec"]["address"], creds)
    stub = pbg.JobServiceStub(channel)
    stream = stub.GetJobLogs(pb.GetJobLogsRequest(uuid=status["jobUUID"]))
    timer: threading.Timer | None = None
    if not args.follow:  # without -f: print what is there, stop once output goes quiet
        timer = threading.Timer(IDLE_S, stream.cancel)
        timer.start()
    try:
        for chunk in stream:
            sys.stdout.buffer.write(chunk.payload)
            sys.stdout.buffer.flush()
            if not args.follow:
                if timer:
                    timer.cancel()
                timer = threading.Timer(IDLE_S, stream.cancel)
                timer.start()
        return 0
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED:
            return 0
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        if timer:
            timer.cancel()
        channel.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.exit(logs(args))


if __name__ == "__main__":
    main()
