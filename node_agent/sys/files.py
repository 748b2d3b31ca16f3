"""Small durable-file helpers: atomic replace, JSON records."""

from __future__ import annotations

import json
import os
from typing import Any


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write-then-rename so a reader (or a crash) never sees half a file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json(path: str, obj: Any, mode: int = 0o600) -> None:
    write_atomic(path, json.dumps(obj, separators=(",", ":")).encode(), mode)


def read_json(path: str) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())
