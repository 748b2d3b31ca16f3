"""The one place the agent runs other programs (mkfs, mount, losetup, nft, git).

A failure becomes a typed `CommandError` carrying the command's own stderr, so callers
can turn it into a message a person can act on instead of a bare exit status.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class CommandError(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        detail = self.stderr or f"exit status {returncode}"
        super().__init__(f"{argv[0]}: {detail}")


def run(
    argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` (no shell) and return its result; raise CommandError unless it exits 0."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise CommandError(argv, 127, f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise CommandError(argv, -1, f"timed out after {timeout:g}s") from None
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr.decode(errors="replace"))
    return done
