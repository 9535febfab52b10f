"""The FUSE front door: the device files in a one-directory FUSE mount.

For kernels without CUSE. We open ``/dev/fuse``, mount it ourselves with mount(2)
(``fuse.kpaxos`` at ``/run/kpaxos`` by default), answer FUSE_INIT and serve a root
directory holding the folder ``devices`` with ``learner`` and ``client`` in it;
symlinks (``/dev/kpaxos-learner``, ``/dev/kpaxos-client``) point at them. The folder
exists only in the mount: with no daemon serving it, a write through a link fails
(ENOENT) instead of creating a plain file in the empty mount directory. The mount
uses ``default_permissions`` so the kernel enforces the files' mode and owner (chmod
and chown work, in memory).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from devices import mounts
from devices.engine import DEFAULT_MAX_WRITE, Device, Engine, Request, RequestError, negotiate_minor
from devices.fuse_abi import (
    FATTR_GID,
    FATTR_MODE,
    FATTR_SIZE,
    FATTR_UID,
    FUSE_BIG_WRITES,
    FUSE_COMPAT_22_INIT_OUT_SIZE,
    FUSE_ROOT_ID,
    KERNEL_VERSION,
    READ_IN,
    BadRequest,
    Opcode,
    build_dirent,
    fuse_attr_out,
    fuse_entry_out,
    fuse_init_in,
    fuse_init_in_compat,
    fuse_init_out,
    fuse_open_out,
    fuse_setattr_in,
    fuse_statfs_out,
    parse_name_untrusted,
    parse_untrusted,
)
from devices.info import CLIENT_DEVICE, LEARNER_DEVICE, DeviceError, DeviceInfo
from devices.running import Readers, run_engines

logger = logging.getLogger("kpaxos.devices")

FUSE_DEVICE = "/dev/fuse"
FSTYPE = "fuse.kpaxos"
FOLDER_NAME = "devices"
LEARNER_NAME = "learner"
CLIENT_NAME = "client"
LEARNER_LINK = LEARNER_DEVICE
CLIENT_LINK = CLIENT_DEVICE
#: How long the kernel may cache names and attributes: only we change them, and
#: every change we make goes back in the reply that made it.
_CACHE_SECONDS = 3600


@dataclass(slots=True)
class _Node:
    ino: int
    name: bytes
    mode: int  # with the S_IF* type bits
    uid: int
    gid: int
    device: Device | None
    size: int = 0
    parent: int = FUSE_ROOT_ID
    children: dict[bytes, _Node] = field(default_factory=dict)


class FuseFilesystem:
    """The door: FUSE_INIT and a root directory holding two device files."""

    def __init__(self, learner: Device, client: Device, *, mode: int = 0o660,
                 uid: int = 0, gid: int = 0, max_write: int = DEFAULT_MAX_WRITE) -> None:
        self._time = int(time.time())
        self._root = _Node(FUSE_ROOT_ID, b"", stat.S_IFDIR | 0o755, uid, gid, None)
        folder = _Node(FUSE_ROOT_ID + 1, FOLDER_NAME.encode(), stat.S_IFDIR | 0o755, uid, gid,
                       None)
        # The client file is as long as the longest write: the kernel runs writes of
        # a file in parallel only when they end within its size (engine.py,
        # DEVICE_OPEN_FLAGS). Writes come at offset 0 (FOPEN_STREAM).
        files = [_Node(FUSE_ROOT_ID + 2, LEARNER_NAME.encode(), stat.S_IFREG | mode, uid, gid,
                       learner, parent=folder.ino),
                 _Node(FUSE_ROOT_ID + 3, CLIENT_NAME.encode(), stat.S_IFREG | mode, uid, gid,
                       client, size=max_write, parent=folder.ino)]
        self._root.children = {folder.name: folder}
        folder.children = {node.name: node for node in files}
        self._nodes = {node.ino: node for node in [self._root, folder, *files]}
        # st_blksize: stdio (bash's echo and printf) writes in pieces of st_blksize when
        # it is below BUFSIZ (8 KiB), so 4096 cut a 6,000-byte echo into two values;
        # cat writes max(st_blksize, 128 KiB) at a time. The kernel keeps only the log2,
        # so a power of two, and no more than one WRITE carries.
        self._blksize = 1 << (max_write.bit_length() - 1)
        self._handlers: dict[int, Callable[[Engine, Request, memoryview], None]] = {
            Opcode.INIT: self._init,
            Opcode.LOOKUP: self._lookup,
            Opcode.FORGET: self._forget,
            Opcode.BATCH_FORGET: self._forget,
            Opcode.GETATTR: self._getattr,
            Opcode.SETATTR: self._setattr,
            Opcode.ACCESS: self._ok,
            Opcode.OPENDIR: self._opendir,
            Opcode.READDIR: self._readdir,
            Opcode.RELEASEDIR: self._ok,
            Opcode.FSYNCDIR: self._ok,
            Opcode.STATFS: self._statfs,
        }

    # -- the door protocol --------------------------------------------------------------

    def device_for(self, nodeid: int) -> Device | None:
        return self._node(nodeid).device

    def handle(self, engine: Engine, request: Request, body: memoryview) -> bool:
        handler = self._handlers.get(request.opcode)
        if handler is None:
            return False
        handler(engine, request, body)
        return True

    # -- operations ---------------------------------------------------------------------

    def _init(self, engine: Engine, request: Request, body: memoryview) -> None:
        # Kernels before 7.36 send the short form; newer ones add flags2 (meaningful
        # with FUSE_INIT_EXT), which we neither use nor offer.
        long_form = len(body) >= fuse_init_in.sizeof()
        arg = parse_untrusted(fuse_init_in if long_form else fuse_init_in_compat, body)
        minor = negotiate_minor(arg.major, arg.minor)
        reply = fuse_init_out.build({
            "major": KERNEL_VERSION,
            "minor": minor,
            "max_readahead": arg.max_readahead,
            "flags": arg.flags & FUSE_BIG_WRITES,
            "max_background": 0,
            "congestion_threshold": 0,
            "max_write": engine.max_write,
            "time_gran": 1,
            "max_pages": 0,
            "map_alignment": 0,
            "flags2": 0,
        })
        if minor < 23:
            reply = reply[:FUSE_COMPAT_22_INIT_OUT_SIZE]
        logger.debug("FUSE_INIT: kernel %d.%d, speaking 7.%d", arg.major, arg.minor, minor)
        request.reply(reply)
        engine.initialized(minor)

    def _lookup(self, engine: Engine, request: Request, body: memoryview) -> None:
        folder = self._node(request.nodeid)
        if not stat.S_ISDIR(folder.mode):
            raise RequestError(errno.ENOTDIR)
        node = folder.children.get(parse_name_untrusted(body))
        if node is None:
            raise RequestError(errno.ENOENT)
        request.reply(fuse_entry_out.build({
            "nodeid": node.ino,
            "generation": 1,
            "entry_valid": _CACHE_SECONDS,
            "attr_valid": _CACHE_SECONDS,
            "entry_valid_nsec": 0,
            "attr_valid_nsec": 0,
            "attr": self._attr(node),
        }))

    def _forget(self, engine: Engine, request: Request, body: memoryview) -> None:
        pass  # the nodes live as long as the mount; FORGET gets no reply

    def _getattr(self, engine: Engine, request: Request, body: memoryview) -> None:
        self._reply_attr(request, self._node(request.nodeid))

    def _setattr(self, engine: Engine, request: Request, body: memoryview) -> None:
        node = self._node(request.nodeid)
        arg = parse_untrusted(fuse_setattr_in, body)
        if arg.valid & FATTR_SIZE:
            # A shell's ">" truncates: fine, there is nothing to cut (the size we say
            # stays). Growing is not.
            if stat.S_ISDIR(node.mode):
                raise RequestError(errno.EISDIR)
            if arg.size != 0:
                raise RequestError(errno.EINVAL)
        if arg.valid & FATTR_MODE:
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(arg.mode)
        if arg.valid & FATTR_UID:
            node.uid = arg.uid
        if arg.valid & FATTR_GID:
            node.gid = arg.gid
        self._reply_attr(request, node)  # times: accepted, not kept

    def _ok(self, engine: Engine, request: Request, body: memoryview) -> None:
        request.reply()

    def _opendir(self, engine: Engine, request: Request, body: memoryview) -> None:
        if not stat.S_ISDIR(self._node(request.nodeid).mode):
            raise RequestError(errno.ENOTDIR)
        request.reply(fuse_open_out.build({"fh": 0, "open_flags": 0}))

    def _readdir(self, engine: Engine, request: Request, body: memoryview) -> None:
        if len(body) < READ_IN.size:
            raise BadRequest(f"READDIR body of {len(body)} bytes")
        _fh, offset, size, *_ = READ_IN.unpack_from(body)
        folder = self._node(request.nodeid)
        entries = [(folder.ino, b".", stat.S_IFDIR), (folder.parent, b"..", stat.S_IFDIR)]
        entries += [(node.ino, node.name, stat.S_IFMT(node.mode))
                    for node in folder.children.values()]
        out = bytearray()
        for position in range(offset, len(entries)):
            ino, name, kind = entries[position]
            record = build_dirent(ino, position + 1, kind >> 12, name)  # DT_* = S_IF* >> 12
            if len(out) + len(record) > size:
                break
            out += record
        request.reply(bytes(out))

    def _statfs(self, engine: Engine, request: Request, body: memoryview) -> None:
        request.reply(fuse_statfs_out.build({"st": {
            "blocks": 0, "bfree": 0, "bavail": 0, "files": len(self._nodes), "ffree": 0,
            "bsize": 4096, "namelen": 255, "frsize": 4096,
        }}))

    # -- helpers ------------------------------------------------------------------------

    def _node(self, nodeid: int) -> _Node:
        try:
            return self._nodes[nodeid]
        except KeyError:
            raise RequestError(errno.ENOENT) from None

    def _attr(self, node: _Node) -> dict[str, int]:
        return {
            "ino": node.ino, "size": node.size, "blocks": 0,
            "atime": self._time, "mtime": self._time, "ctime": self._time,
            "atimensec": 0, "mtimensec": 0, "ctimensec": 0,
            "mode": node.mode, "nlink": _links_to(node),
            "uid": node.uid, "gid": node.gid, "rdev": 0, "blksize": self._blksize, "flags": 0,
        }

    def _reply_attr(self, request: Request, node: _Node) -> None:
        request.reply(fuse_attr_out.build({
            "attr_valid": _CACHE_SECONDS, "attr_valid_nsec": 0, "attr": self._attr(node),
        }))


def _links_to(node: _Node) -> int:
    # A directory is named in its parent, by its own "." and by each child's "..".
    if not stat.S_ISDIR(node.mode):
        return 1
    return 2 + sum(stat.S_ISDIR(child.mode) for child in node.children.values())


def _open_fuse_device(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(f"{path} does not exist: this kernel has no FUSE "
                          f"(try 'modprobe fuse')") from None
    except OSError as exc:
        raise DeviceError(f"cannot open {path}: {exc.strerror} (the devices need root)") from None


def _mount(fd: int, mount_dir: str, uid: int, gid: int) -> None:
    data = (f"fd={fd},rootmode={stat.S_IFDIR:o},user_id={uid},group_id={gid},"
            f"allow_other,default_permissions")
    try:
        mounts.mount("kpaxos", mount_dir, FSTYPE, mounts.MS_NOSUID | mounts.MS_NODEV, data)
    except OSError as exc:
        hint = {
            errno.EPERM: "mounting needs root (CAP_SYS_ADMIN)",
            errno.ENODEV: "this kernel has no FUSE file system",
            errno.ENOENT: "the mount directory does not exist",
        }.get(exc.errno or 0, "")
        raise DeviceError(f"cannot mount the devices at {mount_dir}: {exc.strerror}"
                          + (f" ({hint})" if hint else "")) from None


async def serve_fuse(
    learner: Device,
    client: Device,
    *,
    mount_dir: str,
    link_dir: str,
    device_mode: int,
    device_gid: int | None = None,
    name_prefix: str = "",
    compat_learner: str | None = None,
    drain: Readers | None = None,
    max_write: int = DEFAULT_MAX_WRITE,
    fuse_device: str = FUSE_DEVICE,
    task_status: trio.TaskStatus[DeviceInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``learner`` and ``client`` in a FUSE mount until cancelled.

    Args:
        device_gid: the files' group (default: the daemon's).
        name_prefix: put before the links' names (``PREFIXkpaxos-learner``).
        compat_learner: also link ``link_dir/<this>`` to the learner file (the
            original's ``chardevice/klearner0``; the prefix goes before it too).
        drain: when cancelled, these readers of a closed log read on to EOF while they
            make progress (devices.running.drain_readers), before the pending requests
            are failed.

    Raises:
        DeviceError: the mount or links cannot be set up, or the mount was taken away.
    """
    mount_dir = mounts.absolute(mount_dir)
    link_dir = mounts.absolute(link_dir)
    learner_file = os.path.join(mount_dir, FOLDER_NAME, LEARNER_NAME)
    links = [(os.path.join(link_dir, name_prefix + LEARNER_LINK), learner_file),
             (os.path.join(link_dir, name_prefix + CLIENT_LINK),
              os.path.join(mount_dir, FOLDER_NAME, CLIENT_NAME))]
    if compat_learner is not None:
        links.append((os.path.join(link_dir, name_prefix + compat_learner), learner_file))
    # Everything that can refuse is checked before anything is mounted.
    mounts.refuse_overlap(mount_dir, link_dir, [link for link, _ in links])
    await mounts.refuse_live_links(links, FSTYPE)
    if await mounts.clear_stale_mount(mount_dir, FSTYPE):
        mounts.remove_links_into(link_dir, mount_dir)
    mounts.refuse_nonempty(mount_dir)
    for link, _ in links:
        mounts.move_stray_file(link)
    try:
        os.makedirs(mount_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise DeviceError(f"cannot create the mount directory {mount_dir}: {exc}") from None
    uid, gid = os.getuid(), os.getgid()
    fd = _open_fuse_device(fuse_device)
    mounted = False
    installed: list[tuple[str, str]] = []
    try:
        _mount(fd, mount_dir, uid, gid)
        mounted = True
        door = FuseFilesystem(learner, client, mode=device_mode, uid=uid,
                              gid=gid if device_gid is None else device_gid, max_write=max_write)
        engine = Engine(fd, door, max_write=max_write)
        what = f"the FUSE file system at {mount_dir}"
        async with run_engines([engine], what=what, drain=drain) as running:
            for link, target in links:
                mounts.install_link(link, target)
                installed.append((link, target))
            logger.info("devices served through FUSE: %s", ", ".join(
                f"{link} -> {target}" for link, target in links))
            task_status.started(DeviceInfo(
                door="fuse", learner=links[0][0], client=links[1][0],
                learner_target=links[0][1], client_target=links[1][1],
                compat_learner=links[2][0] if compat_learner is not None else None,
                mount_dir=mount_dir, statistics=running.statistics))
            await running.wait_any_finished()
        raise DeviceError(f"the FUSE mount at {mount_dir} went away "
                          f"(unmounted by someone else?)")
    finally:
        for link, target in installed:
            mounts.remove_link(link, target)
            folder = os.path.dirname(link)
            if folder != link_dir:  # made for a name like chardevice/klearner0
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        if mounted:
            try:
                mounts.umount2(mount_dir, mounts.MNT_DETACH)
            except OSError as exc:
                logger.error("cannot detach the mount at %s: %s", mount_dir, exc)
        trio.lowlevel.notify_closing(fd)
        os.close(fd)
        logger.info("devices at %s removed", mount_dir)
