"""The one place the agent runs external commands, turning failures into a typed error."""

from __future__ import annotations

import subprocess


class CommandError(Exception):
    """A command failed; the message carries its stderr."""

    def __init__(self, argv: list[str], code: int, stderr: str) -> None:
        self.argv, self.code, self.stderr = argv, code, stderr
        super().__init__(f"{argv[0]} exited with {code}: {stderr.strip() or '(no message)'}")


def run(
    argv: list[str], *, input: bytes | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(argv, -1, str(e)) from None
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc
