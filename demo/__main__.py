"""`python -m demo [--keep] [--local]`: the Kubernetes demo, or (--local) one agent and the CLI."""

from __future__ import annotations

import argparse
import sys

from demo import cluster, local


def main() -> int:
    p = argparse.ArgumentParser(prog="make demo", description=__doc__)
    p.add_argument("--keep", action="store_true", help="leave it running afterwards")
    p.add_argument(
        "--local", action="store_true", help="one agent and the joblet CLI, no Kubernetes"
    )
    a = p.parse_args()
    return local.run(keep=a.keep) if a.local else cluster.run(keep=a.keep)


if __name__ == "__main__":
    sys.exit(main())
