"""``--upload`` / ``--upload-dir`` collection: relative paths, kept modes, directories before
their contents, and refusal of anything that cannot be read completely."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblet.uploads import UploadEntry, UploadError, collect_uploads


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "src" / "main.py").write_text("print('x')\n")
    (root / "src" / "main.py").chmod(0o640)
    (root / "src" / "pkg" / "data.bin").write_bytes(bytes(range(256)))
    (root / "src").chmod(0o750)
    (root / "empty").chmod(0o700)
    return root


def by_path(entries: list[UploadEntry]) -> dict[str, UploadEntry]:
    return {e.path: e for e in entries}


def test_single_file_goes_to_basename_with_mode(tree: Path) -> None:
    entries = collect_uploads([tree / "run.sh"])
    assert entries == [UploadEntry(path="run.sh", mode=0o755, content=b"#!/bin/sh\necho hi\n")]
    proto = entries[0].to_proto()
    assert (proto.path, proto.mode, proto.is_directory) == ("run.sh", 0o755, False)


def test_directory_contents_keep_relative_paths_and_modes(tree: Path) -> None:
    entries = collect_uploads(dirs=[tree])
    paths = [e.path for e in entries]
    assert set(paths) == {
        "empty",
        "src",
        "run.sh",
        "src/pkg",
        "src/main.py",
        "src/pkg/data.bin",
    }
    assert "project" not in " ".join(paths)  # the contents go to /work, not /work/project
    for entry in entries:
        assert not entry.path.startswith("/") and ".." not in entry.path.split("/")
    index = {p: i for i, p in enumerate(paths)}
    assert index["src"] < index["src/main.py"] and index["src/pkg"] < index["src/pkg/data.bin"]
    found = by_path(entries)
    assert found["src"] == UploadEntry(path="src", mode=0o750, is_directory=True)
    assert found["empty"] == UploadEntry(path="empty", mode=0o700, is_directory=True)
    assert found["src/main.py"].mode == 0o640
    assert found["src/pkg/data.bin"].content == bytes(range(256))
    assert found["src/pkg"].to_proto().is_directory


def test_files_and_dirs_together(tree: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("e")
    entries = collect_uploads([extra], [tree / "src"])
    assert entries[0].path == "extra.txt"
    assert {"pkg", "main.py", "pkg/data.bin"} <= set(by_path(entries))


def test_shared_subdirectory_of_two_trees_is_merged(tmp_path: Path) -> None:
    for name, file in (("a", "one"), ("b", "two")):
        (tmp_path / name / "lib").mkdir(parents=True)
        (tmp_path / name / "lib" / file).write_text(file)
    entries = collect_uploads(dirs=[tmp_path / "a", tmp_path / "b"])
    assert [e.path for e in entries].count("lib") == 1
    assert {"lib/one", "lib/two"} <= set(by_path(entries))


def test_same_file_path_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("1")
    (tmp_path / "b" / "x").write_text("2")
    with pytest.raises(UploadError, match="'x' given twice"):
        collect_uploads([tmp_path / "a" / "x", tmp_path / "b" / "x"])
    with pytest.raises(UploadError, match="'x' given twice"):
        collect_uploads(dirs=[tmp_path / "a", tmp_path / "b"])


def test_symlink_to_file_uploads_its_content(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    target = tmp_path / "target"
    target.write_text("content")
    target.chmod(0o600)
    (tmp_path / "d" / "link").symlink_to(target)
    assert by_path(collect_uploads(dirs=[tmp_path / "d"]))["link"] == UploadEntry(
        path="link", mode=0o600, content=b"content"
    )


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UploadError, match="symbolic links to directories"):
        collect_uploads(dirs=[tmp_path / "d"])


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "broken").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UploadError, match="broken"):
        collect_uploads(dirs=[tmp_path / "d"])


def test_missing_file_and_dir(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="No such file"):
        collect_uploads([tmp_path / "nope"])
    with pytest.raises(UploadError, match="No such file"):
        collect_uploads(dirs=[tmp_path / "nope"])


def test_directory_given_as_file_and_file_as_directory(tree: Path) -> None:
    with pytest.raises(UploadError, match="use --upload-dir"):
        collect_uploads([tree / "src"])
    with pytest.raises(UploadError, match="use --upload for files"):
        collect_uploads(dirs=[tree / "run.sh"])


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UploadError, match="not a regular file"):
        collect_uploads([fifo])
    with pytest.raises(UploadError, match="not a regular file"):
        collect_uploads(dirs=[tmp_path])


def test_socket_is_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(UploadError, match="not a regular file"):
            collect_uploads(dirs=[tmp_path])


def test_total_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1001)
    with pytest.raises(UploadError, match="1001 bytes, more than the 1000"):
        collect_uploads([tmp_path / "big"], max_total_bytes=1000)
    assert collect_uploads([tmp_path / "big"], max_total_bytes=1001)


def test_regular_file_that_fails_to_read_is_refused() -> None:
    """/proc/self/mem is a regular file whose first byte cannot be read, even by root."""
    with pytest.raises(UploadError, match="cannot read"):
        collect_uploads(["/proc/self/mem"])


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path may not be)."""
    path = Path(tempfile.mkdtemp(prefix="joblet-upload-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for child in sorted(path.rglob("*"), reverse=True):
            child.chmod(0o700)
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()


def _collect_as_unprivileged(files: list[Path], dirs: list[Path]) -> str:
    """Run collect_uploads with the permissions of 'nobody' if we are root (root reads
    everything), returning the UploadError message or "" if nothing was refused."""
    if os.geteuid() != 0:
        try:
            collect_uploads(files, dirs)
        except UploadError as err:
            return str(err)
        return ""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to nobody, report the outcome through the pipe
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                collect_uploads(files, dirs)
                message = ""
            except UploadError as err:
                message = str(err)
            os.write(write_end, message.encode())
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return output


def test_unreadable_file_is_refused(shared_dir: Path) -> None:
    secret = shared_dir / "secret.txt"
    secret.write_text("no")
    secret.chmod(0o000)
    assert "cannot read" in _collect_as_unprivileged([secret], [])
    assert "Permission denied" in _collect_as_unprivileged([], [shared_dir])


def test_unreadable_subdirectory_is_refused(shared_dir: Path) -> None:
    (shared_dir / "closed").mkdir()
    (shared_dir / "closed" / "inside").write_text("x")
    (shared_dir / "closed").chmod(0o000)
    message = _collect_as_unprivileged([], [shared_dir])
    assert "closed" in message and "Permission denied" in message
