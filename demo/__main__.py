"""`python -m demo [--keep]`."""

from __future__ import annotations

import argparse
import sys

from demo import local


def main() -> int:
    p = argparse.ArgumentParser(prog="make demo", description=__doc__)
    p.add_argument("--keep", action="store_true", help="leave the agent running afterwards")
    a = p.parse_args()
    return local.run(keep=a.keep)


if __name__ == "__main__":
    sys.exit(main())
