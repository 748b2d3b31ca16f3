"""Getting a recipe's files onto disk without trusting them.

Files come from a client (InstallRuntimeFromLocal) or from a repository's branch archive
(InstallRuntimeFromGithub). Both are untrusted: every path is checked to stay inside the
destination, links may only point inside the tree, device nodes and FIFOs are refused,
and sizes are bounded. A bad archive is refused as a whole, before anything is installed.
"""

from __future__ import annotations

import os
import posixpath
import re
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass

from node_agent.runtimes.manifest import ManifestError, clean_relative

MAX_RECIPE_BYTES = 256 << 20
MAX_ARCHIVE_BYTES = 512 << 20
MAX_ENTRIES = 100_000
DOWNLOAD_TIMEOUT_S = 60.0
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")


class ArchiveError(ValueError):
    """The files or archive can't be used; the message says which entry and why."""


@dataclass(frozen=True)
class RecipeFile:
    path: str  # relative, normalised
    content: bytes
    executable: bool


def clean_file_path(raw: str) -> str:
    try:
        return clean_relative("file path", raw)
    except ManifestError as e:
        raise ArchiveError(str(e)) from None


def check_files(files: list[RecipeFile]) -> None:
    """Paths unique, none both a file and a directory, total size bounded."""
    seen: set[str] = set()
    total = 0
    for f in files:
        if f.path in seen:
            raise ArchiveError(f"file {f.path!r} is given twice")
        seen.add(f.path)
        total += len(f.content)
    for f in files:
        parts = f.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise ArchiveError(f"{'/'.join(parts[:i])!r} is a file but {f.path!r} is inside it")
    if total > MAX_RECIPE_BYTES:
        raise ArchiveError(f"the files total {total} bytes; the limit is {MAX_RECIPE_BYTES}")


def write_files(dest: str, files: list[RecipeFile]) -> None:
    for f in files:
        target = os.path.join(dest, f.path)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(f.content)
        os.chmod(target, 0o755 if f.executable else 0o644)


# -- archives ------------------------------------------------------------------------------


def archive_url(base: str, repository: str, branch: str) -> str:
    """`BASE/OWNER/REPO/archive/refs/heads/BRANCH.tar.gz`, as GitHub serves branch archives."""
    if not REPOSITORY.match(repository) or ".." in repository:
        raise ArchiveError(f"repository {repository!r} must look like owner/repo")
    if not BRANCH.match(branch) or ".." in branch or branch.startswith(("/", "-")):
        raise ArchiveError(f"branch {branch!r} is not a valid branch name")
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in ("http", "https"):
        raise ArchiveError(f"archive base {base!r} must be an http(s) URL")
    return f"{base.rstrip('/')}/{repository}/archive/refs/heads/{urllib.parse.quote(branch)}.tar.gz"


def download(url: str, dest: str, *, limit: int = MAX_ARCHIVE_BYTES) -> int:
    """Fetch `url` into the file `dest` (blocking; run it in a thread). Returns its size."""
    req = urllib.request.Request(url, headers={"User-Agent": "joblet-agent"})
    total = 0
    try:
        with (
            urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT_S) as resp,
            open(dest, "wb") as out,
        ):
            while chunk := resp.read(1 << 16):
                total += len(chunk)
                if total > limit:
                    raise ArchiveError(f"{url} is larger than {limit} bytes")
                out.write(chunk)
    except ArchiveError:
        raise
    except urllib.error.HTTPError as e:
        raise ArchiveError(f"downloading {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise ArchiveError(f"downloading {url} failed: {reason}") from None
    return total


def _member_path(m: tarfile.TarInfo) -> str:
    name = m.name
    if name.startswith("/") or "\x00" in name:
        raise ArchiveError(f"archive entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r} climbs out of the archive with '..'")
    return "/".join(parts)


def plan_extraction(members: list[tarfile.TarInfo]) -> list[tuple[str, tarfile.TarInfo]]:
    """Check every entry; return (relative path, member) to extract, parents first."""
    if len(members) > MAX_ENTRIES:
        raise ArchiveError(f"the archive has more than {MAX_ENTRIES} entries")
    out: list[tuple[str, tarfile.TarInfo]] = []
    total = 0
    for m in members:
        if m.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            continue
        path = _member_path(m)
        if not path:
            if m.isdir():
                continue
            raise ArchiveError(f"archive entry {m.name!r} has no name")
        if m.issym() or m.islnk():
            link = m.linkname
            if link.startswith("/"):
                raise ArchiveError(f"archive link {m.name!r} points to the absolute path {link!r}")
            base = posixpath.dirname(path) if m.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, link))
            if resolved == ".." or resolved.startswith("../"):
                raise ArchiveError(f"archive link {m.name!r} -> {link!r} points outside")
        elif not (m.isfile() or m.isdir()):
            raise ArchiveError(f"archive entry {m.name!r} is a device or FIFO; not allowed")
        total += m.size
        if total > MAX_RECIPE_BYTES:
            raise ArchiveError(f"the archive unpacks to more than {MAX_RECIPE_BYTES} bytes")
        out.append((path, m))
    return out


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _make_parents(root: str, path: str, entry: str) -> None:
    """Create the entry's parent folders one by one, refusing to pass through anything
    (a link the archive made) that leads outside `root`."""
    cur = root
    for part in path.split("/")[:-1]:
        cur = os.path.join(cur, part)
        if os.path.lexists(cur):
            if not _inside(root, cur) or not os.path.isdir(cur):
                raise ArchiveError(f"archive entry {entry!r} would be written outside the archive")
        else:
            os.mkdir(cur, 0o755)
    if os.path.lexists(os.path.join(root, path)) and not os.path.isdir(os.path.join(root, path)):
        raise ArchiveError(f"archive entry {entry!r} appears twice")


def extract(archive: str, dest: str) -> None:
    """Unpack a .tar(.gz) into the empty directory `dest`, refusing unsafe entries."""
    root = os.path.realpath(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            planned = plan_extraction(tar.getmembers())
            for path, m in planned:
                target = os.path.join(root, path)
                _make_parents(root, path, m.name)
                if m.isdir():
                    if not os.path.isdir(target):
                        os.mkdir(target, 0o755)
                elif m.issym():
                    os.symlink(m.linkname, target)
                else:  # regular file, or a hard link: stored as a copy of its target
                    src = tar.extractfile(m)
                    if src is None:
                        raise ArchiveError(f"archive entry {m.name!r} can't be read")
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                    fd = os.open(target, flags, 0o600)
                    with os.fdopen(fd, "wb") as out, src:
                        while chunk := src.read(1 << 16):
                            out.write(chunk)
                    os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
    except (tarfile.TarError, EOFError, OSError, KeyError) as e:
        raise ArchiveError(f"the archive can't be unpacked: {e}") from None


def single_top_dir(root: str) -> str:
    """GitHub archives hold one folder (REPO-BRANCH); return it, or `root` itself."""
    entries = os.listdir(root)
    if len(entries) == 1 and os.path.isdir(os.path.join(root, entries[0])):
        only = os.path.join(root, entries[0])
        if not os.path.islink(only):
            return only
    return root
