"""`joblet-operator`: the Kopf controller for joblet.io resources.

Runs standalone (one replica; no peering objects needed), cluster-wide. Credentials for the
API server come from --kubeconfig or the in-cluster service account; the client certificate
it presents to node agents comes from a Secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

import kopf

from joblet_operator import nodes as _nodes
from joblet_operator.agents import AgentCredentials, Agents
from joblet_operator.context import Context
from joblet_operator.handlers import jobs as _jobs  # noqa: F401 - registers the Job handlers
from joblet_operator.handlers import resources as _resources  # noqa: F401 - Network, Volume, Runtime
from joblet_operator.kube import Kube, KubeError

log = logging.getLogger("joblet-operator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="joblet-operator", description=__doc__)
    p.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG", ""), help="default: in-cluster"
    )
    p.add_argument(
        "--node-grace",
        type=float,
        default=40.0,
        help="seconds without heartbeat before a node is lost",
    )
    p.add_argument(
        "--tls-secret",
        default="joblet-system/joblet-operator-tls",
        help="NAMESPACE/NAME of the Secret with tls.crt, tls.key, ca.crt for talking to agents",
    )
    p.add_argument(
        "--insecure-agents", action="store_true", help="plaintext gRPC (loopback agents only)"
    )
    p.add_argument("--namespace", action="append", default=[], help="watch only these namespaces")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def register(args: argparse.Namespace) -> None:
    @kopf.on.login()
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if args.kubeconfig:
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs)

    @kopf.on.startup()
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = "joblet.io/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="joblet.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="joblet.io")
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        kube = Kube(args.kubeconfig or None)
        creds = None
        if not args.insecure_agents:
            ns, _, name = args.tls_secret.partition("/")
            try:
                data = await kube.secret_data(ns, name)
                creds = AgentCredentials(
                    cert=data["tls.crt"], key=data["tls.key"], ca=data["ca.crt"]
                )
            except (KubeError, KeyError) as e:
                raise kopf.PermanentError(
                    f"agent client certificate from Secret {args.tls_secret}: {e}"
                ) from e
        _nodes.configure(grace=args.node_grace)
        memo.ctx = Context(kube=kube, agents=Agents(creds), node_grace_s=args.node_grace)
        memo.node_grace_s = args.node_grace

    @kopf.on.cleanup()
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        ctx: Context | None = getattr(memo, "ctx", None)
        if ctx is not None:
            await ctx.agents.close()
            await ctx.kube.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    register(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            kopf.operator(
                standalone=True,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                memo=kopf.Memo(),
            )
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
