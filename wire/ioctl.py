"""ioctl numbers, as ``<asm-generic/ioctl.h>`` makes them (x86, arm, arm64, riscv, s390
and most others; alpha, mips, powerpc and sparc lay the bits out otherwise, and
tests/devices/test_fuse_abi.py would say so there).

For a restricted ioctl the kernel decodes the number itself: the size bytes at the
argument are copied to the device if the direction has ``_IOC_WRITE``, and back to
the caller if it has ``_IOC_READ``. The kpaxos devices' own numbers are in
:mod:`wire.device`.
"""

from __future__ import annotations

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_DIRBITS = 2
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
#: The direction bits, as the caller sees them: WRITE sends data in, READ gets data out.
IOC_NONE = 0
IOC_WRITE = 1
IOC_READ = 2
#: The largest argument an ioctl number can describe.
IOC_SIZE_MAX = (1 << _IOC_SIZEBITS) - 1


def ioc(direction: int, type_: int | str, nr: int, size: int) -> int:
    """The ioctl number ``_IOC(direction, type_, nr, size)``.

    ``type_`` is the driver's letter (a one-character string or its code), ``nr`` the
    command's number within it, ``size`` the argument's size in bytes.

    Raises:
        ValueError: a field does not fit its bits.
    """
    code = ord(type_) if isinstance(type_, str) else type_
    if not (0 <= direction <= IOC_READ | IOC_WRITE and 0 <= code < 1 << _IOC_TYPEBITS
            and 0 <= nr < 1 << _IOC_NRBITS and 0 <= size <= IOC_SIZE_MAX):
        raise ValueError(f"no ioctl number for ({direction}, {type_!r}, {nr}, {size})")
    return ((direction << _IOC_DIRSHIFT) | (code << _IOC_TYPESHIFT)
            | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT))


def io(type_: int | str, nr: int) -> int:
    """``_IO``: a command without argument data."""
    return ioc(IOC_NONE, type_, nr, 0)


def ior(type_: int | str, nr: int, size: int) -> int:
    """``_IOR``: the caller reads ``size`` bytes (the server answers them)."""
    return ioc(IOC_READ, type_, nr, size)


def iow(type_: int | str, nr: int, size: int) -> int:
    """``_IOW``: the caller writes ``size`` bytes (the server receives them)."""
    return ioc(IOC_WRITE, type_, nr, size)


def iowr(type_: int | str, nr: int, size: int) -> int:
    """``_IOWR``: ``size`` bytes go in, and up to ``size`` bytes come back."""
    return ioc(IOC_READ | IOC_WRITE, type_, nr, size)


def ioc_dir(cmd: int) -> int:
    """``_IOC_DIR``: the direction bits of ``cmd``."""
    return (cmd >> _IOC_DIRSHIFT) & ((1 << _IOC_DIRBITS) - 1)


def ioc_size(cmd: int) -> int:
    """``_IOC_SIZE``: the argument size ``cmd`` declares."""
    return (cmd >> _IOC_SIZESHIFT) & IOC_SIZE_MAX
