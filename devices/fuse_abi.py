"""The FUSE/CUSE kernel protocol, declared once (``/usr/include/linux/fuse.h``, 7.38).

Every structure is a ``construct`` declaration in native byte order with its padding
spelled out (construct does no C alignment); ``tests/devices/test_fuse_abi.py`` checks
each ``sizeof`` and every named field's offset against the C header. Field names are the
C names.

construct is the specification and the cold path. The few structures on the hot path
(the headers, READ and WRITE) also have ``struct.Struct`` codecs, made from these
declarations by :func:`wire.layout.fast_struct`.

Bytes from the kernel are parsed only through :func:`parse_untrusted`, which raises
:class:`BadRequest` and nothing else.
"""

from __future__ import annotations

import enum

from construct import (
    Aligned,
    Bytes,
    ConstructError,
    Container,
    Enum,
    Int16un,
    Int32sn,
    Int32un,
    Int64un,
    Padding,
    Rebuild,
    Struct,
    len_,
    this,
)

from wire.layout import fast_struct

#: The protocol version this module declares and the engine speaks.
KERNEL_VERSION = 7
KERNEL_MINOR_VERSION = 38
#: The oldest kernel minor the engine accepts: every structure below has had its
#: current size since 7.9, and poll notifications arrived in 7.11.
MIN_KERNEL_MINOR_VERSION = 12

FUSE_ROOT_ID = 1
#: Room the kernel needs in a read buffer besides a WRITE's data (libfuse's
#: FUSE_BUFFER_HEADER_SIZE); the buffer must also be at least FUSE_MIN_READ_BUFFER.
FUSE_BUFFER_HEADER_SIZE = 0x1000
FUSE_MIN_READ_BUFFER = 8192
CUSE_INIT_INFO_MAX = 4096


class Opcode(enum.IntEnum):
    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41
    BATCH_FORGET = 42
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51
    CUSE_INIT = 4096


#: Requests the kernel expects no reply to.
NO_REPLY_OPCODES = frozenset(
    {Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY}
)


class NotifyCode(enum.IntEnum):
    """Sent in ``fuse_out_header.error`` of a notification (``unique`` 0)."""

    POLL = 1
    INVAL_INODE = 2
    INVAL_ENTRY = 3
    STORE = 4
    RETRIEVE = 5
    DELETE = 6


# fuse_open_out.open_flags
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_NONSEEKABLE = 1 << 2
FOPEN_CACHE_DIR = 1 << 3
FOPEN_STREAM = 1 << 4
FOPEN_NOFLUSH = 1 << 5
FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6  # since 7.36 (Linux 6.2)

# fuse_init_in/out.flags (the few we look at or offer)
FUSE_ASYNC_READ = 1 << 0
FUSE_ATOMIC_O_TRUNC = 1 << 3
FUSE_BIG_WRITES = 1 << 5
FUSE_MAX_PAGES = 1 << 22
FUSE_INIT_EXT = 1 << 30

# cuse_init_out.flags
CUSE_UNRESTRICTED_IOCTL = 1 << 0

# fuse_setattr_in.valid
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8
FATTR_LOCKOWNER = 1 << 9
FATTR_CTIME = 1 << 10

# fuse_poll_in.flags
FUSE_POLL_SCHEDULE_NOTIFY = 1 << 0

# fuse_getattr_in.getattr_flags
FUSE_GETATTR_FH = 1 << 0

# fuse_ioctl_in.flags and fuse_ioctl_out.flags
FUSE_IOCTL_COMPAT = 1 << 0  # a 32-bit caller on a 64-bit kernel
FUSE_IOCTL_UNRESTRICTED = 1 << 1  # CUSE_UNRESTRICTED_IOCTL: the server fetches the data
FUSE_IOCTL_RETRY = 1 << 2  # out only: an unrestricted server asks for other buffers
FUSE_IOCTL_32BIT = 1 << 3  # a 32-bit caller (compat, or a 32-bit kernel)
FUSE_IOCTL_DIR = 1 << 4  # on a directory
FUSE_IOCTL_COMPAT_X32 = 1 << 5  # an x32 caller
FUSE_IOCTL_MAX_IOV = 256

# ---------------------------------------------------------------------------
# Headers

fuse_in_header = Struct(
    "len" / Int32un,
    "opcode" / Enum(Int32un, Opcode),
    "unique" / Int64un,
    "nodeid" / Int64un,
    "uid" / Int32un,
    "gid" / Int32un,
    "pid" / Int32un,
    "total_extlen" / Int16un,
    Padding(2),
)

fuse_out_header = Struct(
    "len" / Int32un,
    "error" / Int32sn,
    "unique" / Int64un,
)

# ---------------------------------------------------------------------------
# INIT (FUSE and CUSE)

#: The INIT body of kernels before 7.36; newer ones send :data:`fuse_init_in`.
fuse_init_in_compat = Struct(
    "major" / Int32un,
    "minor" / Int32un,
    "max_readahead" / Int32un,
    "flags" / Int32un,
)

fuse_init_in = Struct(
    "major" / Int32un,
    "minor" / Int32un,
    "max_readahead" / Int32un,
    "flags" / Int32un,
    "flags2" / Int32un,
    Padding(11 * 4),
)

#: Replies to kernels older than 7.5 / 7.23 are cut to these sizes.
FUSE_COMPAT_INIT_OUT_SIZE = 8
FUSE_COMPAT_22_INIT_OUT_SIZE = 24

fuse_init_out = Struct(
    "major" / Int32un,
    "minor" / Int32un,
    "max_readahead" / Int32un,
    "flags" / Int32un,
    "max_background" / Int16un,
    "congestion_threshold" / Int16un,
    "max_write" / Int32un,
    "time_gran" / Int32un,
    "max_pages" / Int16un,
    "map_alignment" / Int16un,
    "flags2" / Int32un,
    Padding(7 * 4),
)

cuse_init_in = Struct(
    "major" / Int32un,
    "minor" / Int32un,
    Padding(4),
    "flags" / Int32un,
)

cuse_init_out = Struct(
    "major" / Int32un,
    "minor" / Int32un,
    Padding(4),
    "flags" / Int32un,
    "max_read" / Int32un,
    "max_write" / Int32un,
    "dev_major" / Int32un,
    "dev_minor" / Int32un,
    Padding(10 * 4),
)

# ---------------------------------------------------------------------------
# Attributes and entries

fuse_attr = Struct(
    "ino" / Int64un,
    "size" / Int64un,
    "blocks" / Int64un,
    "atime" / Int64un,
    "mtime" / Int64un,
    "ctime" / Int64un,
    "atimensec" / Int32un,
    "mtimensec" / Int32un,
    "ctimensec" / Int32un,
    "mode" / Int32un,
    "nlink" / Int32un,
    "uid" / Int32un,
    "gid" / Int32un,
    "rdev" / Int32un,
    "blksize" / Int32un,
    "flags" / Int32un,
)

fuse_entry_out = Struct(
    "nodeid" / Int64un,
    "generation" / Int64un,
    "entry_valid" / Int64un,
    "attr_valid" / Int64un,
    "entry_valid_nsec" / Int32un,
    "attr_valid_nsec" / Int32un,
    "attr" / fuse_attr,
)

fuse_attr_out = Struct(
    "attr_valid" / Int64un,
    "attr_valid_nsec" / Int32un,
    Padding(4),
    "attr" / fuse_attr,
)

fuse_getattr_in = Struct(
    "getattr_flags" / Int32un,
    Padding(4),
    "fh" / Int64un,
)

fuse_setattr_in = Struct(
    "valid" / Int32un,
    Padding(4),
    "fh" / Int64un,
    "size" / Int64un,
    "lock_owner" / Int64un,
    "atime" / Int64un,
    "mtime" / Int64un,
    "ctime" / Int64un,
    "atimensec" / Int32un,
    "mtimensec" / Int32un,
    "ctimensec" / Int32un,
    "mode" / Int32un,
    Padding(4),
    "uid" / Int32un,
    "gid" / Int32un,
    Padding(4),
)

fuse_forget_in = Struct("nlookup" / Int64un)

fuse_forget_one = Struct("nodeid" / Int64un, "nlookup" / Int64un)

fuse_batch_forget_in = Struct("count" / Int32un, Padding(4))

fuse_access_in = Struct("mask" / Int32un, Padding(4))

fuse_getxattr_in = Struct("size" / Int32un, Padding(4))

# ---------------------------------------------------------------------------
# Files

fuse_open_in = Struct("flags" / Int32un, "open_flags" / Int32un)

fuse_open_out = Struct("fh" / Int64un, "open_flags" / Int32un, Padding(4))

fuse_read_in = Struct(
    "fh" / Int64un,
    "offset" / Int64un,
    "size" / Int32un,
    "read_flags" / Int32un,
    "lock_owner" / Int64un,
    "flags" / Int32un,
    Padding(4),
)

fuse_write_in = Struct(
    "fh" / Int64un,
    "offset" / Int64un,
    "size" / Int32un,
    "write_flags" / Int32un,
    "lock_owner" / Int64un,
    "flags" / Int32un,
    Padding(4),
)

fuse_write_out = Struct("size" / Int32un, Padding(4))

fuse_release_in = Struct(
    "fh" / Int64un,
    "flags" / Int32un,
    "release_flags" / Int32un,
    "lock_owner" / Int64un,
)

fuse_flush_in = Struct(
    "fh" / Int64un,
    Padding(4),
    Padding(4),
    "lock_owner" / Int64un,
)

fuse_fsync_in = Struct("fh" / Int64un, "fsync_flags" / Int32un, Padding(4))

fuse_poll_in = Struct(
    "fh" / Int64un,
    "kh" / Int64un,
    "flags" / Int32un,
    "events" / Int32un,
)

fuse_poll_out = Struct("revents" / Int32un, Padding(4))

fuse_notify_poll_wakeup_out = Struct("kh" / Int64un)

fuse_interrupt_in = Struct("unique" / Int64un)

#: A FUSE_IOCTL body; for a restricted ioctl ``in_size`` bytes of argument follow.
fuse_ioctl_in = Struct(
    "fh" / Int64un,
    "flags" / Int32un,
    "cmd" / Int32un,
    "arg" / Int64un,
    "in_size" / Int32un,
    "out_size" / Int32un,
)

#: The reply to FUSE_IOCTL, followed by at most ``out_size`` bytes for the caller.
fuse_ioctl_out = Struct(
    "result" / Int32sn,
    "flags" / Int32un,
    "in_iovs" / Int32un,
    "out_iovs" / Int32un,
)

# ---------------------------------------------------------------------------
# File systems and directories

fuse_kstatfs = Struct(
    "blocks" / Int64un,
    "bfree" / Int64un,
    "bavail" / Int64un,
    "files" / Int64un,
    "ffree" / Int64un,
    "bsize" / Int32un,
    "namelen" / Int32un,
    "frsize" / Int32un,
    Padding(4),
    Padding(6 * 4),
)

fuse_statfs_out = Struct("st" / fuse_kstatfs)

#: The fixed part of a directory entry; the name follows at this offset.
fuse_dirent_header = Struct(
    "ino" / Int64un,
    "off" / Int64un,
    "namelen" / Int32un,
    "type" / Int32un,
)

#: One READDIR record: header, name, zero padding to the next 8-byte boundary
#: (``FUSE_DIRENT_SIZE``).
fuse_dirent = Aligned(
    8,
    Struct(
        "ino" / Int64un,
        "off" / Int64un,
        "namelen" / Rebuild(Int32un, len_(this.name)),
        "type" / Int32un,
        "name" / Bytes(this.namelen),
    ),
)

# ---------------------------------------------------------------------------
# The hot path: ``struct.Struct`` codecs made from the declarations above.

IN_HEADER = fast_struct(fuse_in_header)
OUT_HEADER = fast_struct(fuse_out_header)
READ_IN = fast_struct(fuse_read_in)
WRITE_IN = fast_struct(fuse_write_in)
WRITE_OUT = fast_struct(fuse_write_out)
INTERRUPT_IN = fast_struct(fuse_interrupt_in)


class BadRequest(Exception):
    """A request body from the kernel that does not parse as its opcode's structure."""


def parse_untrusted(spec: Struct, body: bytes | memoryview) -> Container:
    """Parse the fixed-size structure ``spec`` at the start of ``body``.

    Trailing bytes are left to the caller (a WRITE's data, a LOOKUP's name; a newer
    kernel may also send a longer structure than the one declared here).

    Raises:
        BadRequest: ``body`` is shorter than ``spec`` or does not parse.
    """
    size = spec.sizeof()
    if len(body) < size:
        raise BadRequest(f"body of {len(body)} bytes, expected at least {size}")
    try:
        return spec.parse(bytes(body[:size]))
    except ConstructError as exc:  # pragma: no cover - fixed-size integers always parse
        raise BadRequest(str(exc)) from exc


def parse_name_untrusted(body: bytes | memoryview) -> bytes:
    """The NUL-terminated file name that makes up a LOOKUP body.

    Raises:
        BadRequest: no terminating NUL.
    """
    data = bytes(body)
    end = data.find(b"\0")
    if end < 0:
        raise BadRequest("file name without its terminating NUL")
    return data[:end]


def build_dirent(ino: int, off: int, type_: int, name: bytes) -> bytes:
    """One READDIR record, padded to 8 bytes."""
    return bytes(fuse_dirent.build({"ino": ino, "off": off, "type": type_, "name": name}))
