"""Collect ``--upload`` files and ``--upload-dir`` trees into RunJobRequest.uploads.

The agent places every FileUpload under the job's work directory (/work), so paths here are
always relative, POSIX-style and free of "..": ``--upload FILE`` becomes ``BASENAME``, and
``--upload-dir DIR`` contributes the directory's contents (not the directory itself) with their
relative paths, each subdirectory as an ``is_directory`` entry ahead of what it holds.
Permission bits are kept. Anything that cannot be read completely now (unreadable files, FIFOs,
devices, sockets, dangling links) is refused here rather than failing halfway on the agent.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from joblet.api import joblet_pb2

# RunJob carries uploads inside one message; leave room under the 64 MiB limit for the rest.
MAX_TOTAL_UPLOAD_BYTES = 60 * 1024 * 1024


class UploadError(ValueError):
    """A file or directory given for upload cannot be sent."""


@dataclass(frozen=True)
class UploadEntry:
    """One file or directory to create in the job's work directory."""

    path: str  # relative POSIX path
    mode: int  # permission bits (0o7777 at most)
    content: bytes = b""
    is_directory: bool = False

    def to_proto(self) -> joblet_pb2.FileUpload:
        return joblet_pb2.FileUpload(
            path=self.path, content=self.content, mode=self.mode, is_directory=self.is_directory
        )


def collect_uploads(
    files: Iterable[str | Path] = (),
    dirs: Iterable[str | Path] = (),
    max_total_bytes: int = MAX_TOTAL_UPLOAD_BYTES,
) -> list[UploadEntry]:
    """Read every ``files`` entry and every tree under ``dirs``, in that order.

    A file path given twice is an error; a directory reached twice (two trees sharing a
    subdirectory name) is kept once, with the mode first seen.
    """
    entries: list[UploadEntry] = []
    seen: dict[str, bool] = {}  # path -> is_directory

    def add(entry: UploadEntry) -> None:
        previous = seen.get(entry.path)
        if previous is not None:
            if previous and entry.is_directory:
                return
            raise UploadError(f"upload path {entry.path!r} given twice")
        seen[entry.path] = entry.is_directory
        entries.append(entry)

    for file in files:
        source = Path(file)
        if _is_dir(source):
            raise UploadError(f"{source}: is a directory (use --upload-dir)")
        add(_read_file(source, source.name))
    for directory in dirs:
        for entry in _walk(Path(directory)):
            add(entry)
    total = sum(len(entry.content) for entry in entries)
    if total > max_total_bytes:
        raise UploadError(
            f"uploads total {total} bytes, more than the {max_total_bytes} bytes one RunJob "
            "request can carry; put large inputs on a volume instead"
        )
    return entries


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def _walk(root: Path) -> list[UploadEntry]:
    try:
        root_stat = root.stat()
    except OSError as err:
        raise UploadError(f"{root}: {err.strerror or err}") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise UploadError(f"{root}: not a directory (use --upload for files)")
    entries: list[UploadEntry] = []
    errors: list[OSError] = []
    for current, dirnames, filenames in os.walk(root, onerror=errors.append):
        if errors:
            raise _walk_error(errors[0], current)
        here = Path(current)
        dirnames.sort()
        for name in list(dirnames):
            path = here / name
            if path.is_symlink():
                raise UploadError(f"{path}: symbolic links to directories are not uploaded")
            relative = _relative(path, root)
            entries.append(UploadEntry(path=relative, mode=_mode(path.stat()), is_directory=True))
        for name in sorted(filenames):
            path = here / name
            entries.append(_read_file(path, _relative(path, root)))
    if errors:
        raise _walk_error(errors[0], root)
    return entries


def _walk_error(error: OSError, where: str | Path) -> UploadError:
    return UploadError(f"{error.filename or where}: {error.strerror or error}")


def _relative(path: Path, root: Path) -> str:
    relative = PurePosixPath(path.relative_to(root).as_posix())
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UploadError(f"{path}: cannot be expressed relative to {root}")
    return str(relative)


def _read_file(path: Path, relative: str) -> UploadEntry:
    """Read a regular file (following a symlink to one) completely."""
    try:
        info = path.stat()
    except OSError as err:
        raise UploadError(f"{path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UploadError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            content = handle.read()
    except OSError as err:
        raise UploadError(f"{path}: cannot read: {err.strerror or err}") from None
    return UploadEntry(path=relative, mode=_mode(info), content=content)


def _mode(info: os.stat_result) -> int:
    return stat.S_IMODE(info.st_mode)
