"""The system calls and file-system chores of the FUSE door: mount(2), umount2(2),
the mount table, and the symlinks users open.

Nothing here may touch a path inside our own mount from the trio thread: the engine
that would answer the kernel runs on that same thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import logging
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from devices.info import DeviceError

logger = logging.getLogger("kpaxos.devices")

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int


def mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2).

    Raises:
        OSError: with the call's errno.
    """
    if _libc.mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype), flags,
                   os.fsencode(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def umount2(target: str, flags: int) -> None:
    """umount2(2).

    Raises:
        OSError: with the call's errno.
    """
    if _libc.umount2(os.fsencode(target), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


@dataclass(frozen=True, slots=True)
class MountEntry:
    source: str
    target: str
    fstype: str


def _unescape(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as \ooo.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_table(table: str = "/proc/self/mounts") -> list[MountEntry]:
    """Every mount, in the order they were made."""
    with open(table) as f:
        lines = f.read().splitlines()
    return [MountEntry(*map(_unescape, fields[:3]))
            for fields in map(str.split, lines) if len(fields) >= 3]


def mounts_at(target: str, table: str = "/proc/self/mounts") -> list[MountEntry]:
    """The mounts whose mount point is ``target`` (an absolute, normalized path)."""
    return [entry for entry in mount_table(table) if entry.target == target]


def absolute(path: str) -> str:
    """``path`` made absolute with its parent resolved, without touching ``path`` itself
    (stat of a dead FUSE mount point fails, of a hung one hangs)."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


async def clear_stale_mount(mount_dir: str, fstype: str, *, probe_timeout: float = 2.0) -> bool:
    """Detach mounts of ``fstype`` at ``mount_dir`` left by a run that died; whether
    there was one.

    A dead FUSE connection answers ENOTCONN; such a mount is lazily unmounted. So is
    one of ours whose server does not answer within ``probe_timeout`` (a daemon hung
    or stuck dying). A mount that answers belongs to a running server: that is an
    error, not ours to take.

    Raises:
        DeviceError: ``mount_dir`` is served by a live process, or by another file system.
    """
    detached = False
    for _ in range(16):  # several crashed runs may have stacked their mounts
        entries = mounts_at(mount_dir)
        if not entries:
            return detached
        top = entries[-1]
        if top.fstype != fstype:
            if top.fstype.startswith("fuse"):
                raise DeviceError(f"{mount_dir} is already a {top.fstype} mount; "
                                  f"choose another mount directory")
            return detached  # some other file system: ours goes on top of it
        if await _server_answers(mount_dir, probe_timeout):
            raise DeviceError(f"{mount_dir} is already served by a running kpaxos daemon")
        try:
            umount2(mount_dir, MNT_DETACH)
        except OSError as exc:
            raise DeviceError(f"cannot detach the stale mount at {mount_dir}: {exc}") from exc
        detached = True
    raise DeviceError(f"cannot clear the stale mounts at {mount_dir}")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def refuse_overlap(mount_dir: str, link_dir: str, links: Sequence[str]) -> None:
    """Refuse link and mount directories that overlap (absolute, normalized paths).

    Links inside the mount would be made through the mount, which the thread making
    them serves: the daemon would wait on itself.

    Raises:
        DeviceError: they overlap.
    """
    if _within(link_dir, mount_dir):
        raise DeviceError(f"the link directory {link_dir} (--link-dir) is inside the mount "
                          f"directory {mount_dir} (--mount-dir); choose one outside it")
    for link in links:
        if _within(mount_dir, link):
            raise DeviceError(f"the mount directory {mount_dir} (--mount-dir) is the link "
                              f"{link} or under it; choose another mount directory")


def refuse_nonempty(mount_dir: str) -> None:
    """Refuse to mount over a directory that holds anything (it would be hidden).

    Raises:
        DeviceError: ``mount_dir`` is not a directory, cannot be listed, or is not empty.
    """
    try:
        names = sorted(os.listdir(mount_dir))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DeviceError(f"cannot use the mount directory {mount_dir} (--mount-dir): "
                          f"{exc.strerror}") from None
    if names:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise DeviceError(f"the mount directory {mount_dir} (--mount-dir) is not empty "
                          f"({shown}); the mount would hide it: choose an empty or new "
                          f"directory")


def _aside(path: str) -> str:
    return f"{path}.stray-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def move_stray_file(link: str) -> None:
    """Move aside a plain file at ``link``, left by a write while no daemon served it.

    Raises:
        DeviceError: ``link`` is something else than a file or symlink, or cannot be moved.
    """
    try:
        st = os.lstat(link)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    if not stat.S_ISREG(st.st_mode):
        raise DeviceError(f"{link} exists and is neither a link nor a file; not replacing it")
    aside = _aside(link)
    try:
        os.rename(link, aside)
    except OSError as exc:
        raise DeviceError(f"cannot move the plain file {link} aside: {exc.strerror}") from None
    logger.warning("moved the plain file %s aside to %s: a write made it while no daemon "
                   "served the link, and what was written there was never proposed",
                   link, aside)


def _kpaxos_mount_holding(path: str, fstype: str) -> str | None:
    # The mount point of a mount of ours at ``path`` or above it, if any.
    holding = [entry.target for entry in mount_table()
               if entry.fstype == fstype and _within(path, entry.target)]
    return max(holding, key=len, default=None)


class Probe(enum.Enum):
    ANSWERS = "answers"
    DEAD = "dead"  #: the connection is gone (ENOTCONN)
    SILENT = "silent"  #: no answer within the timeout: hung, stopped or dying


async def _probe(mount_dir: str, probe_timeout: float) -> Probe:
    """Whether the FUSE server of the mount at ``mount_dir`` answers.

    Raises:
        DeviceError: the probe failed otherwise.
    """
    # statfs always goes to the server; stat would not: the kernel keeps the root's
    # attributes (for an hour, fuse_door._CACHE_SECONDS) even after the server died.
    # In a thread, which is abandoned if it hangs: a stopped server never answers.
    try:
        with trio.fail_after(probe_timeout):
            await trio.to_thread.run_sync(os.statvfs, mount_dir, abandon_on_cancel=True)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise DeviceError(f"cannot check the mount at {mount_dir}: {exc}") from exc
        return Probe.DEAD
    except trio.TooSlowError:
        return Probe.SILENT
    return Probe.ANSWERS


async def _server_answers(mount_dir: str, probe_timeout: float) -> bool:
    """Does the FUSE server of our old mount at ``mount_dir`` answer? False (logged) if
    its connection is dead or it stays silent for ``probe_timeout`` seconds."""
    probe = await _probe(mount_dir, probe_timeout)
    if probe is Probe.DEAD:
        logger.warning("detaching the stale mount at %s left by an earlier run", mount_dir)
    elif probe is Probe.SILENT:
        logger.warning("detaching the mount at %s: its server did not answer in %g s "
                       "(an earlier run, hung or dying)", mount_dir, probe_timeout)
    return probe is Probe.ANSWERS


async def refuse_live_links(links: Sequence[tuple[str, str]], fstype: str, *,
                            probe_timeout: float = 2.0) -> None:
    """Refuse links that point into the mount of another daemon that is not dead.

    Raises:
        DeviceError: a link of ``links`` (``(link, our target)``) is another daemon's.
    """
    for link, target in links:
        try:
            current = os.readlink(link)
        except OSError:
            continue  # none, or not a link: install_link and move_stray_file see to it
        if current == target:
            continue  # ours, from an earlier run of this mount
        # normpath, not realpath: resolving would look into that mount, maybe hung.
        mount_point = _kpaxos_mount_holding(
            os.path.normpath(os.path.join(os.path.dirname(link), current)), fstype)
        # Silent is not dead: the other mount is not ours to detach, nor its links.
        if mount_point is not None and await _probe(mount_point, probe_timeout) is not Probe.DEAD:
            raise DeviceError(f"{link} belongs to the kpaxos daemon serving {mount_point}; "
                              f"give this one another --link-dir or --device-name-prefix")


def install_link(link: str, target: str) -> None:
    """Make ``link`` a symlink to ``target``, replacing a stale symlink.

    Raises:
        DeviceError: ``link`` exists and is not a symlink, or cannot be made.
    """
    try:
        st = os.lstat(link)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISLNK(st.st_mode):
            raise DeviceError(f"{link} exists and is not a symlink; not replacing it")
        current = os.readlink(link)
        if current != target:
            logger.info("replacing the stale link %s -> %s", link, current)
    temporary = f"{link}.kpaxos-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as exc:
        raise DeviceError(f"cannot create the link {link} -> {target}: {exc}") from exc


def remove_links_into(link_dir: str, mount_dir: str) -> None:
    """Remove the symlinks into ``mount_dir`` in ``link_dir`` and its folders one level
    down, and the folders they leave empty; never raises.

    For after a run that died: the links it made under names this run does not use
    (another name prefix, the compat learner's folder) would be left dangling.
    """
    prefix = os.path.join(mount_dir, "")
    for folder in [link_dir, *_folders_in(link_dir)]:
        removed = False
        for link in _symlinks_in(folder):
            try:
                if os.readlink(link).startswith(prefix):
                    os.unlink(link)
                    removed = True
                    logger.info("removed the stale link %s", link)
            except OSError as exc:
                logger.warning("cannot remove the stale link %s: %s", link, exc)
        if removed and folder != link_dir:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty: it was made for such a link


def _folders_in(path: str) -> list[str]:
    # Not mount points: one could be a hung FUSE mount, and listing it would hang us.
    mount_points = {entry.target for entry in mount_table()}
    try:
        with os.scandir(path) as entries:
            return [entry.path for entry in entries
                    if entry.is_dir(follow_symlinks=False) and entry.path not in mount_points]
    except OSError:
        return []


def _symlinks_in(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [entry.path for entry in entries if entry.is_symlink()]
    except OSError:
        return []


def remove_link(link: str, target: str) -> None:
    """Remove ``link`` if it is still our symlink to ``target``; never raises."""
    try:
        if os.readlink(link) == target:
            os.unlink(link)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            logger.warning("cannot remove the link %s: %s", link, exc)
