#!/usr/bin/env bash
# kpaxos, from a fresh Debian machine (as root) to a running daemon or a test run.
#
#   ./run.sh daemon [kpaxosd options]   run the daemon (default: the built-in cluster)
#   ./run.sh test [pytest options]      lint, type-check and run the whole test suite
#
# Either command first installs what kpaxos needs: Debian packages, then a venv at
# .venv with the project installed (redone when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

say() { printf 'run.sh: %s\n' "$*" >&2; }

# Debian packages: python with venv; a C compiler and the kernel's headers for the
# FUSE ABI size checks; fuse3 for /dev/fuse; kmod, procps and iproute2 for tests;
# qemu, Debian's kernel (CUSE as a module) and busybox (virtme-ng's initramfs) for the
# tests that boot a VM to test the CUSE devices (tests/vm); systemd for checking the
# unit files (systemd-analyze verify); nftables and util-linux (nsenter) for the tests
# that run daemons on network-namespace hosts under faults (tests/netns).
PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev linux-libc-dev fuse3 kmod procps iproute2
          qemu-system-x86 linux-image-amd64 busybox-static systemd nftables util-linux)

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
    # A python3 from elsewhere (pyenv) may stand in for Debian's, if it can make a venv.
    if [ ${#missing[@]} -gt 0 ] && command -v python3 >/dev/null \
        && python3 -c 'import ensurepip, venv, sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        local still=()
        for package in "${missing[@]}"; do
            case "$package" in python3|python3-venv|python3-dev) ;; *) still+=("$package") ;; esac
        done
        missing=("${still[@]+"${still[@]}"}")
    fi
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" -ne 0 ]; then
        say "missing Debian packages: ${missing[*]} (run as root to install them)"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_venv() {
    local stamp=.venv/.kpaxos-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    [ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
    say "installing kpaxos into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" > "$stamp"
}

command=${1:-}
shift || true
case "$command" in
    daemon)
        install_packages
        install_venv
        exec .venv/bin/kpaxosd "$@"
        ;;
    test)
        install_packages
        install_venv
        say "ruff"
        .venv/bin/ruff check --no-cache --output-format concise .
        say "mypy (every package and the tests, strict)"
        .venv/bin/mypy
        say "pytest"
        exec .venv/bin/pytest "$@"
        ;;
    *)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
