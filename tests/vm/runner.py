"""Boot Debian's kernel (which has CUSE as a module) under virtme-ng and run a command in it.

The guest sees the host's root file system read-only (so the project and its venv are
there at the same paths), writable overlays on /tmp, /etc, /var and /usr, and the
``--rwdir`` we pass it read-write, which is how results come back. KVM hangs on the
development machines, so the guest always runs under software emulation.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: ``vng`` lives beside the interpreter running the tests (the project's venv).
VNG = Path(sys.executable).with_name("vng")
#: How long one VM run may take, boot included, before it is killed.
VM_TIMEOUT = 25 * 60


class VmError(AssertionError):
    """The VM could not be booted or run (a test failure, never a skip)."""


def _version_key(path: Path) -> list[int | str]:
    # vmlinuz-6.1.0-56-amd64 sorts after vmlinuz-6.1.0-9-amd64.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def newest_kernel(boot: Path = Path("/boot")) -> Path:
    """The newest ``vmlinuz-*-amd64`` under ``boot`` (Debian's linux-image-amd64).

    Raises:
        VmError: there is none (run.sh installs linux-image-amd64).
    """
    kernels = sorted(boot.glob("vmlinuz-*-amd64"), key=_version_key)
    if not kernels:
        raise VmError(f"no vmlinuz-*-amd64 in {boot}: install linux-image-amd64 "
                      f"(./run.sh test does)")
    return kernels[-1]


@dataclass(frozen=True)
class VmRun:
    returncode: int | None  #: None: killed at the time limit
    output: str  #: what vng and the guest printed
    seconds: float


def run_in_vm(command: str, rwdir: Path, *, kernel: Path | None = None,
              timeout: float = VM_TIMEOUT) -> VmRun:
    """Boot the kernel, run ``command`` (a shell command) as root in it, and power off.

    Whatever happens, no qemu is left running: vng runs in its own process group,
    which is killed at the time limit or on any error.

    Raises:
        VmError: vng is missing or the kernel cannot be found.
    """
    if not VNG.exists():
        raise VmError(f"{VNG} is missing: the test extra installs virtme-ng (./run.sh test)")
    kernel = kernel or newest_kernel()
    argv = [str(VNG), "--disable-kvm", "--cpus", "2", "--memory", "2G",
            "--run", str(kernel), "--rwdir", str(rwdir), "--exec", command]
    env = dict(os.environ)
    env["PATH"] = f"{VNG.parent}{os.pathsep}{env.get('PATH', '')}"  # vng runs virtme-run
    started = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        returncode: int | None = process.returncode
    except subprocess.TimeoutExpired:
        returncode = None
        _kill_group(process)
        output, _ = process.communicate()
    finally:
        _kill_group(process)
    return VmRun(returncode, output.decode(errors="replace"), time.monotonic() - started)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # vng starts qemu as a child; the group takes both.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
