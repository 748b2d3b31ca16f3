"""Job output on disk: bounded, rotated, masked, and readable while it is written.

The supervisor appends the job's merged stdout/stderr to numbered segment files
(`000000.log`, `000001.log`, ...). When the job's output passes the cap, the oldest
segments are deleted, so a job writing without end holds at most `max_bytes` on disk and
a chunk in memory. Secret values are replaced by `***` before anything reaches disk,
including a secret split across two reads.

The agent reads the same files to replay and follow a job's output. Because the files
are the only channel, a log survives an agent restart whole, and any number of readers
cost the supervisor nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

SEGMENT = re.compile(r"^(\d{6})\.log$")
MASK = b"***"
NOTICE = b"\n[joblet: earlier output was dropped by log rotation]\n"


def segment_name(index: int) -> str:
    return f"{index:06d}.log"


def list_segments(log_dir: str) -> list[int]:
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := SEGMENT.match(n)))


class Masker:
    """Replaces secret values in a byte stream, holding back only the tail that could be
    the start of a secret continued in the next chunk."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(s.encode() for s in secrets if s)
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self.secrets:
            return data
        buf = self.pending + data
        for s in self.secrets:
            if s in buf:
                buf = buf.replace(s, MASK)
        hold = 0
        for s in self.secrets:
            for k in range(min(len(s) - 1, len(buf)), hold, -1):
                if buf.endswith(s[:k]):
                    hold = k
                    break
        if hold:
            self.pending = buf[-hold:]
            return buf[:-hold]
        self.pending = b""
        return buf

    def flush(self) -> bytes:
        out, self.pending = self.pending, b""
        return out


class SegmentWriter:
    def __init__(self, log_dir: str, segment_bytes: int, max_bytes: int) -> None:
        self.dir = log_dir
        self.segment_bytes = max(segment_bytes, 4096)
        self.max_segments = max(2, -(-max_bytes // self.segment_bytes))
        existing = list_segments(log_dir)
        self.index = existing[-1] + 1 if existing else 0
        self.fd = -1
        self.size = 0
        self._open()

    def _open(self) -> None:
        path = os.path.join(self.dir, segment_name(self.index))
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            room = self.segment_bytes - self.size
            if room <= 0:
                self._rotate()
                continue
            n = os.write(self.fd, view[:room])
            self.size += n
            view = view[n:]

    def _rotate(self) -> None:
        os.close(self.fd)
        self.index += 1
        self._open()
        oldest = self.index - self.max_segments + 1
        for i in list_segments(self.dir):
            if i >= oldest:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, segment_name(i)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class ReadPosition:
    index: int = -1
    offset: int = 0


class SegmentReader:
    """Reads segments in order from a position; `read()` returns b"" at the current end."""

    def __init__(self, log_dir: str, chunk: int = 1 << 20) -> None:
        self.dir = log_dir
        self.chunk = chunk
        self.pos = ReadPosition()
        self._fd = -1

    def _open(self, index: int) -> bool:
        try:
            fd = os.open(os.path.join(self.dir, segment_name(index)), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.pos = ReadPosition(index, 0)
        return True

    def read(self) -> bytes:
        """Next bytes available, b"" when caught up. Where rotation deleted output this
        reader had not reached, it returns a one-line notice in its place."""
        while True:
            if self._fd < 0:
                segs = list_segments(self.dir)
                if not segs or not self._open(segs[0]):
                    return b""
                if segs[0] > 0:
                    return NOTICE
                continue
            data = os.read(self._fd, self.chunk)
            if data:
                self.pos.offset += len(data)
                return data
            expected = self.pos.index + 1
            later = [i for i in list_segments(self.dir) if i > self.pos.index]
            if not later:
                return b""
            # the writer moved on, so this segment is final: drain what it appended
            # between our empty read and its rotation before switching
            data = os.read(self._fd, self.chunk)
            if data:
                self.pos.offset += len(data)
                return data
            if self._open(later[0]) and later[0] > expected:
                return NOTICE

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read():
            yield data
