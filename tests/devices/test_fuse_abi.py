"""The construct declarations against the kernel's own header, compiled with ``cc``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from construct import Struct
from hypothesis import given
from hypothesis import strategies as st

import wire.ioctl as ioctl_numbers
from devices import fuse_abi as abi

#: C name -> declaration. Every field named in a declaration must exist in C.
STRUCTS: dict[str, Struct] = {
    "fuse_in_header": abi.fuse_in_header,
    "fuse_out_header": abi.fuse_out_header,
    "fuse_init_in": abi.fuse_init_in,
    "fuse_init_out": abi.fuse_init_out,
    "cuse_init_in": abi.cuse_init_in,
    "cuse_init_out": abi.cuse_init_out,
    "fuse_attr": abi.fuse_attr,
    "fuse_entry_out": abi.fuse_entry_out,
    "fuse_attr_out": abi.fuse_attr_out,
    "fuse_getattr_in": abi.fuse_getattr_in,
    "fuse_setattr_in": abi.fuse_setattr_in,
    "fuse_forget_in": abi.fuse_forget_in,
    "fuse_forget_one": abi.fuse_forget_one,
    "fuse_batch_forget_in": abi.fuse_batch_forget_in,
    "fuse_access_in": abi.fuse_access_in,
    "fuse_getxattr_in": abi.fuse_getxattr_in,
    "fuse_open_in": abi.fuse_open_in,
    "fuse_open_out": abi.fuse_open_out,
    "fuse_read_in": abi.fuse_read_in,
    "fuse_write_in": abi.fuse_write_in,
    "fuse_write_out": abi.fuse_write_out,
    "fuse_release_in": abi.fuse_release_in,
    "fuse_flush_in": abi.fuse_flush_in,
    "fuse_fsync_in": abi.fuse_fsync_in,
    "fuse_poll_in": abi.fuse_poll_in,
    "fuse_poll_out": abi.fuse_poll_out,
    "fuse_notify_poll_wakeup_out": abi.fuse_notify_poll_wakeup_out,
    "fuse_interrupt_in": abi.fuse_interrupt_in,
    "fuse_ioctl_in": abi.fuse_ioctl_in,
    "fuse_ioctl_out": abi.fuse_ioctl_out,
    "fuse_kstatfs": abi.fuse_kstatfs,
    "fuse_statfs_out": abi.fuse_statfs_out,
}

#: The precompiled hot-path forms and the declarations they stand for.
PRECOMPILED = [
    (abi.IN_HEADER, abi.fuse_in_header),
    (abi.OUT_HEADER, abi.fuse_out_header),
    (abi.READ_IN, abi.fuse_read_in),
    (abi.WRITE_IN, abi.fuse_write_in),
    (abi.WRITE_OUT, abi.fuse_write_out),
    (abi.INTERRUPT_IN, abi.fuse_interrupt_in),
]


#: fuse_abi's names for the kernel's constants of the same name.
IOCTL_CONSTANTS: dict[str, int] = {
    "FUSE_IOCTL_COMPAT": abi.FUSE_IOCTL_COMPAT,
    "FUSE_IOCTL_UNRESTRICTED": abi.FUSE_IOCTL_UNRESTRICTED,
    "FUSE_IOCTL_RETRY": abi.FUSE_IOCTL_RETRY,
    "FUSE_IOCTL_32BIT": abi.FUSE_IOCTL_32BIT,
    "FUSE_IOCTL_DIR": abi.FUSE_IOCTL_DIR,
    "FUSE_IOCTL_COMPAT_X32": abi.FUSE_IOCTL_COMPAT_X32,
    "FUSE_IOCTL_MAX_IOV": abi.FUSE_IOCTL_MAX_IOV,
    "CUSE_UNRESTRICTED_IOCTL": abi.CUSE_UNRESTRICTED_IOCTL,
    "_IOC_NONE": ioctl_numbers.IOC_NONE,
    "_IOC_READ": ioctl_numbers.IOC_READ,
    "_IOC_WRITE": ioctl_numbers.IOC_WRITE,
    "_IOC_SIZEMASK": ioctl_numbers.IOC_SIZE_MAX,
}

#: (direction, letter, nr, size) and fuse_abi's number for it, to compare with C's.
IOCTL_NUMBERS: list[tuple[tuple[str, str, int, int], int]] = [
    (("none", "k", 0, 0), ioctl_numbers.io("k", 0)),
    (("r", "k", 1, 8), ioctl_numbers.ior("k", 1, 8)),
    (("w", "k", 2, 4), ioctl_numbers.iow("k", 2, 4)),
    (("rw", "k", 3, 24), ioctl_numbers.iowr("k", 3, 24)),
    (("rw", "T", 255, 16383), ioctl_numbers.iowr("T", 255, 16383)),
    (("r", "K", 9, 1), ioctl_numbers.ior(ord("K"), 9, 1)),
]


def _fields(spec: Struct) -> list[tuple[str, int]]:
    """Named fields with their offsets, as construct lays them out."""
    offset, fields = 0, []
    for sub in spec.subcons:
        if sub.name is not None:
            fields.append((sub.name, offset))
        offset += sub.sizeof()
    return fields


def _c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/fuse.h>",
             "#include <linux/ioctl.h>",
             "int main(void) {"]
    for name, spec in STRUCTS.items():
        lines.append(f'printf("{name} %zu\\n", sizeof(struct {name}));')
        for field, _ in _fields(spec):
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
    lines.append('printf("FUSE_NAME_OFFSET %zu\\n", (size_t)FUSE_NAME_OFFSET);')
    for namelen in range(0, 18):
        lines.append(f'{{ struct fuse_dirent d = {{ .namelen = {namelen} }}; '
                     f'printf("FUSE_DIRENT_SIZE.{namelen} %zu\\n", '
                     f'(size_t)FUSE_DIRENT_SIZE(&d)); }}')
    lines.append('printf("FUSE_KERNEL_MINOR_VERSION %d\\n", FUSE_KERNEL_MINOR_VERSION);')
    for constant in IOCTL_CONSTANTS:
        lines.append(f'printf("{constant} %lu\\n", (unsigned long){constant});')
    for (direction, letter, nr, size), _ in IOCTL_NUMBERS:
        macro = {"none": "_IO", "r": "_IOR", "w": "_IOW", "rw": "_IOWR"}[direction]
        args = f"'{letter}', {nr}" + ("" if direction == "none" else f", char[{size}]")
        lines.append(f'printf("{macro}.{letter}.{nr}.{size} %lu\\n", '
                     f'(unsigned long){macro}({args}));')
    lines.append("return 0; }")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    cc = shutil.which("cc")
    if cc is None or not Path("/usr/include/linux/fuse.h").exists():
        pytest.fail("needs a C compiler and <linux/fuse.h> (Debian: gcc linux-libc-dev; "
                    "./run.sh test installs them)")
    work = tmp_path_factory.mktemp("abi")
    (work / "layout.c").write_text(_c_program())
    subprocess.run([cc, "-o", str(work / "layout"), str(work / "layout.c")], check=True)
    out = subprocess.run([str(work / "layout")], check=True, capture_output=True, text=True)
    return {key: int(value) for key, value in (line.split() for line in out.stdout.splitlines())}


@pytest.mark.parametrize("name", STRUCTS)
def test_sizeof_and_offsets_match_c(name: str, c_layout: dict[str, int]) -> None:
    spec = STRUCTS[name]
    assert spec.sizeof() == c_layout[name]
    for field, offset in _fields(spec):
        assert offset == c_layout[f"{name}.{field}"], field


def test_init_in_compat_is_the_prefix_of_init_in(c_layout: dict[str, int]) -> None:
    assert abi.fuse_init_in_compat.sizeof() == c_layout["fuse_init_in.flags2"]
    assert [name for name, _ in _fields(abi.fuse_init_in_compat)] == [
        name for name, _ in _fields(abi.fuse_init_in)][:4]


def test_dirent_layout_matches_c(c_layout: dict[str, int]) -> None:
    assert abi.fuse_dirent_header.sizeof() == c_layout["FUSE_NAME_OFFSET"]
    for namelen in range(1, 18):
        record = abi.build_dirent(5, 7, 8, b"x" * namelen)
        assert len(record) == c_layout[f"FUSE_DIRENT_SIZE.{namelen}"]
        assert record.endswith(b"\0" * (len(record) - 24 - namelen))


def test_declared_version_is_the_headers(c_layout: dict[str, int]) -> None:
    assert c_layout["FUSE_KERNEL_MINOR_VERSION"] >= abi.KERNEL_MINOR_VERSION


def test_precompiled_sizes() -> None:
    for packed, spec in PRECOMPILED:
        assert packed.size == spec.sizeof()


@given(st.data())
def test_precompiled_forms_parse_like_the_declarations(data: st.DataObject) -> None:
    for packed, spec in PRECOMPILED:
        raw = bytearray(data.draw(st.binary(min_size=packed.size, max_size=packed.size)))
        # padding is zero on the wire; the declarations build it as zero
        values = packed.unpack(raw)
        rebuilt = packed.pack(*values)
        parsed = spec.parse(rebuilt)
        names = [name for name, _ in _fields(spec)]
        assert [int(parsed[n]) for n in names] == list(values)
        assert spec.build(parsed) == rebuilt


def test_round_trip_samples() -> None:
    header = {"len": 80, "opcode": "READ", "unique": 0x1234, "nodeid": 2, "uid": 1000,
              "gid": 100, "pid": 4242, "total_extlen": 0}
    raw = abi.fuse_in_header.build(header)
    assert abi.IN_HEADER.unpack(raw) == (80, abi.Opcode.READ, 0x1234, 2, 1000, 100, 4242, 0)
    assert abi.fuse_in_header.parse(raw).opcode == "READ"

    attr = {"ino": 2, "size": 0, "blocks": 0, "atime": 1, "mtime": 2, "ctime": 3,
            "atimensec": 4, "mtimensec": 5, "ctimensec": 6, "mode": 0o100660, "nlink": 1,
            "uid": 0, "gid": 0, "rdev": 0, "blksize": 4096, "flags": 0}
    entry = {"nodeid": 2, "generation": 1, "entry_valid": 1, "attr_valid": 1,
             "entry_valid_nsec": 0, "attr_valid_nsec": 0, "attr": attr}
    parsed = abi.fuse_entry_out.parse(abi.fuse_entry_out.build(entry))
    assert parsed.attr.mode == 0o100660 and parsed.nodeid == 2

    init = {"major": 7, "minor": 38, "max_readahead": 0, "flags": 0,
            "max_background": 0, "congestion_threshold": 0, "max_write": 131072,
            "time_gran": 1, "max_pages": 0, "map_alignment": 0, "flags2": 0}
    assert abi.fuse_init_out.parse(abi.fuse_init_out.build(init)).max_write == 131072

    record = abi.build_dirent(3, 4, 8, b"client")
    parsed = abi.fuse_dirent.parse(record)
    assert (parsed.ino, parsed.off, parsed.name) == (3, 4, b"client")


def test_unknown_opcode_parses_to_its_number() -> None:
    raw = abi.fuse_in_header.build({"len": 40, "opcode": 999, "unique": 1, "nodeid": 0,
                                    "uid": 0, "gid": 0, "pid": 0, "total_extlen": 0})
    assert int(abi.fuse_in_header.parse(raw).opcode) == 999


@given(st.binary(max_size=100))
def test_parse_untrusted_raises_only_bad_request(body: bytes) -> None:
    for spec in STRUCTS.values():
        try:
            abi.parse_untrusted(spec, body)
        except abi.BadRequest:
            assert len(body) < spec.sizeof()
    try:
        abi.parse_name_untrusted(body)
    except abi.BadRequest:
        assert b"\0" not in body


def test_ioctl_constants_match_c(c_layout: dict[str, int]) -> None:
    for name, value in IOCTL_CONSTANTS.items():
        assert value == c_layout[name], name


def test_ioctl_numbers_match_c(c_layout: dict[str, int]) -> None:
    for (direction, letter, nr, size), number in IOCTL_NUMBERS:
        macro = {"none": "_IO", "r": "_IOR", "w": "_IOW", "rw": "_IOWR"}[direction]
        assert number == c_layout[f"{macro}.{letter}.{nr}.{size}"], (direction, letter, nr)


@given(direction=st.integers(0, 3), type_=st.integers(0, 255), nr=st.integers(0, 255),
       size=st.integers(0, ioctl_numbers.IOC_SIZE_MAX))
def test_ioctl_numbers_decode_to_their_direction_and_size(
        direction: int, type_: int, nr: int, size: int) -> None:
    cmd = ioctl_numbers.ioc(direction, type_, nr, size)
    assert 0 <= cmd < 1 << 32
    assert (ioctl_numbers.ioc_dir(cmd), ioctl_numbers.ioc_size(cmd)) == (direction, size)


@pytest.mark.parametrize("fields", [(4, 0, 0, 0), (0, 256, 0, 0), (0, 0, 256, 0),
                                    (0, 0, 0, ioctl_numbers.IOC_SIZE_MAX + 1), (0, -1, 0, 0)])
def test_ioctl_numbers_refuse_fields_too_wide(fields: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="no ioctl number"):
        ioctl_numbers.ioc(*fields)
