"""``python -m bench`` (``make bench``): runs every benchmark module of this package that exposes
``run() -> list[(name, value, unit, target)]`` and prints each figure beside its target."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from typing import cast

import bench

Row = tuple[str, float, str, str]


def main() -> int:
    failed = 0
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        run = getattr(module, "run", None)
        if not callable(run):
            continue
        try:
            rows = cast(Callable[[], list[Row]], run)()
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"{info.name}: FAILED: {exc}", file=sys.stderr)
            failed += 1
            continue
        for name, value, unit, target in rows:
            print(f"{name}: {value:.1f} {unit} (target {target})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
