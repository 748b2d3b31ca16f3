"""The side effects of volumes on the host: images, filesystems, mounts.

A filesystem volume is a sparse file formatted ext4 (no reserved blocks, so the job gets
all of it) and loop-mounted: the loop device is created by `mount -o loop` with autoclear,
so unmounting also frees it. A memory volume is a tmpfs with a size limit. Each mount's
root is owned by the job user so jobs can write to it. Everything here is blocking; the
caller runs it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os

from node_agent.sys import libc
from node_agent.sys.run import CommandError, run
from node_agent.volumes.spec import VolumeDef, VolumePaths, mount_points

MOUNT_FLAGS = libc.MS_NOSUID | libc.MS_NODEV


class VolumeHostError(Exception):
    """A host step failed; the message says which and why."""


def mounted() -> dict[str, str]:
    with open("/proc/self/mountinfo") as f:
        return mount_points(f.read())


def is_mounted(path: str) -> bool:
    return os.path.realpath(path) in mounted()


def create(vol: VolumeDef, paths: VolumePaths, uid: int, gid: int) -> None:
    """Make and mount the volume's storage; on failure leave nothing behind."""
    os.makedirs(paths.mnt_root, mode=0o711, exist_ok=True)
    try:
        if vol.kind == "filesystem":
            _make_image(vol, paths)
        mount(vol, paths, uid, gid)
    except BaseException:
        destroy(vol.name, paths)
        raise


def _make_image(vol: VolumeDef, paths: VolumePaths) -> None:
    image = paths.image(vol.name)
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, vol.size_bytes)  # sparse: takes no space until written
    finally:
        os.close(fd)
    try:
        run(
            ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", vol.name[:16], image],
            timeout=300,
        )
    except CommandError as e:
        raise VolumeHostError(f"formatting volume {vol.name!r} failed: {e}") from None


def mount(vol: VolumeDef, paths: VolumePaths, uid: int, gid: int) -> None:
    """Mount the volume on its mount point (again, after a reboot) and give it to the job user."""
    target = paths.mount_point(vol.name)
    os.makedirs(target, mode=0o755, exist_ok=True)
    if vol.kind == "filesystem":
        try:
            run(["mount", "-t", "ext4", "-o", "loop,nosuid,nodev", paths.image(vol.name), target])
        except CommandError as e:
            raise VolumeHostError(f"mounting volume {vol.name!r} failed: {e}") from None
    else:
        data = f"size={vol.size_bytes},mode=0755,uid={uid},gid={gid}"
        try:
            libc.mount(f"joblet-{vol.name}", target, "tmpfs", MOUNT_FLAGS, data)
        except OSError as e:
            raise VolumeHostError(
                f"mounting volume {vol.name!r} failed: {os.strerror(e.errno or 0)}"
            ) from None
    os.chown(target, uid, gid)
    os.chmod(target, 0o755)


def unmount(name: str, paths: VolumePaths) -> None:
    """Unmount if mounted; raise VolumeHostError(EBUSY) if something on the host holds it."""
    target = paths.mount_point(name)
    if not is_mounted(target):
        return
    try:
        libc.umount2(target, 0)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise VolumeHostError(
                f"volume {name!r} is busy on the host (a process outside the jobs uses it)"
            ) from None
        raise VolumeHostError(f"unmounting volume {name!r}: {os.strerror(e.errno or 0)}") from None


def detach_loops(image: str) -> None:
    """Free any loop device still bound to `image` (autoclear normally did already)."""
    if not os.path.exists(image):
        return
    try:
        out = run(["losetup", "-j", image, "-O", "NAME", "-n"]).stdout.decode()
    except CommandError:
        return
    for dev in out.split():
        with contextlib.suppress(CommandError):
            run(["losetup", "-d", dev])


def destroy(name: str, paths: VolumePaths) -> None:
    """Unmount, free the loop device, delete the image and mount point (definition untouched)."""
    unmount(name, paths)
    image = paths.image(name)
    detach_loops(image)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(image)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(paths.mount_point(name))


def usage(path: str) -> tuple[int, int]:
    """(total, used) bytes of the mounted filesystem at `path`."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return total, total - st.f_bfree * st.f_frsize


def memory_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
