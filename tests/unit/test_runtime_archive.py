"""Untrusted recipe files and archives: traversal, absolute paths, links out of the tree and
device nodes are refused before anything is written; good archives unpack intact."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from node_agent.runtimes.archive import (
    ArchiveError,
    RecipeFile,
    archive_url,
    check_files,
    clean_file_path,
    extract,
    single_top_dir,
    write_files,
)


def make_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tar.addfile(e)
            else:
                name, data = e
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_good_archive_unpacks(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    tar = make_tar(
        tmp_path / "a.tar.gz",
        [
            ("repo-main/runtimes/x/runtime.yaml", b"name: x-1\n"),
            ("repo-main/runtimes/x/setup.sh", b"echo hi\n"),
            link("repo-main/runtimes/x/alias.sh", "setup.sh"),
            link("repo-main/runtimes/x/hard.sh", "repo-main/runtimes/x/setup.sh", tarfile.LNKTYPE),
        ],
    )
    extract(tar, str(dest))
    top = single_top_dir(str(dest))
    assert top == str(dest / "repo-main")
    x = Path(top) / "runtimes" / "x"
    assert (x / "runtime.yaml").read_bytes() == b"name: x-1\n"
    assert os.access(x / "setup.sh", os.X_OK)
    assert os.readlink(x / "alias.sh") == "setup.sh"
    assert not (x / "hard.sh").is_symlink() and (x / "hard.sh").read_bytes() == b"echo hi\n"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (("../evil", b"x"), "climbs out"),
        (("repo/../../evil", b"x"), "climbs out"),
        (("/etc/evil", b"x"), "absolute path"),
        (link("repo/l", "/etc/passwd"), "absolute path"),
        (link("repo/l", "../../etc"), "points outside"),
        (link("repo/l", "../../etc/passwd", tarfile.LNKTYPE), "points outside"),
    ],
)
def test_bad_archives_refused_whole(
    tmp_path: Path, entry: tarfile.TarInfo | tuple[str, bytes], fragment: str
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    tar = make_tar(tmp_path / "a.tar.gz", [("repo/runtime.yaml", b"name: x-1\n"), entry])
    with pytest.raises(ArchiveError, match=fragment):
        extract(tar, str(dest))
    assert list(dest.iterdir()) == []  # checked before anything was written
    assert not (tmp_path / "evil").exists()


def test_device_nodes_refused(tmp_path: Path) -> None:
    dev = tarfile.TarInfo("repo/null")
    dev.type = tarfile.CHRTYPE
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="device or FIFO"):
        extract(make_tar(tmp_path / "a.tar.gz", [dev]), str(dest))


def test_writing_through_a_link_refused(tmp_path: Path) -> None:
    """Each link lands inside lexically, but chained they lead out: repo/d/l is the archive
    root, so repo/m (= repo/d/l/..) is its parent."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    tar = make_tar(
        tmp_path / "a.tar.gz",
        [
            ("repo/d/keep", b""),
            link("repo/d/l", "../.."),
            link("repo/m", "d/l/.."),
            ("repo/m/outside/x", b"x"),
        ],
    )
    with pytest.raises(ArchiveError, match="outside"):
        extract(tar, str(dest))
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "out", "outside"]


def test_not_an_archive(tmp_path: Path) -> None:
    bad = tmp_path / "a.tar.gz"
    bad.write_bytes(b"<html>not found</html>")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="can't be unpacked"):
        extract(str(bad), str(dest))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [("/etc/x", "absolute"), ("a/../../x", "'..'"), ("", "non-empty"), (".", "folder itself")],
)
def test_local_file_paths(raw: str, fragment: str) -> None:
    with pytest.raises(ArchiveError, match=fragment):
        clean_file_path(raw)
    assert clean_file_path("./a//b/c.py") == "a/b/c.py"


def test_local_files_checked_and_written(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="given twice"):
        check_files([RecipeFile("a", b"", False), RecipeFile("a", b"", False)])
    with pytest.raises(ArchiveError, match="is a file but"):
        check_files([RecipeFile("a", b"", False), RecipeFile("a/b", b"", False)])
    files = [RecipeFile("runtime.yaml", b"name: x-1\n", False), RecipeFile("bin/run", b"#!", True)]
    check_files(files)
    write_files(str(tmp_path / "src"), files)
    assert (tmp_path / "src" / "runtime.yaml").read_bytes() == b"name: x-1\n"
    assert os.access(tmp_path / "src" / "bin" / "run", os.X_OK)


def test_archive_url() -> None:
    assert (
        archive_url("http://127.0.0.1:8080/", "acme/runtimes", "feature/x")
        == "http://127.0.0.1:8080/acme/runtimes/archive/refs/heads/feature/x.tar.gz"
    )
    for repo, branch, fragment in [
        ("acme", "main", "owner/repo"),
        ("acme/../x", "main", "owner/repo"),
        ("acme/rt", "../main", "branch"),
        ("acme/rt", "a b", "branch"),
    ]:
        with pytest.raises(ArchiveError, match=fragment):
            archive_url("https://github.com", repo, branch)
    with pytest.raises(ArchiveError, match="http"):
        archive_url("file:///etc", "acme/rt", "main")
