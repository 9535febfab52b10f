"""The packages depend on each other one way only, and no module import is a cycle.

The layers, lowest first (docs/architecture.md, "Dependencies"): a module may import
its own layer and the ones below, never one above. Checked on the source (AST), so an
import inside a function or under TYPE_CHECKING counts too.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Lowest first; "kpaxosd.paxos" is the sans-IO core, "kpaxosd" the daemon around it.
LAYERS = ["wire", "kpaxosd.paxos", "devices", "kpaxosd", "clients"]
PACKAGES = {layer.split(".")[0] for layer in LAYERS}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path
            for package in sorted(PACKAGES) for path in (ROOT / package).rglob("*.py")}


MODULES = modules()


def layer_of(module: str) -> str:
    # The most specific layer the module is in.
    return max((layer for layer in LAYERS
                if module == layer or module.startswith(layer + ".")), key=len)


def imports_of(module: str) -> Iterator[str]:
    """The modules of ours that ``module`` imports, each as the module it names."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: use absolute imports"
            base = node.module or ""
            # "from devices import mounts" imports the module devices.mounts.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name


def test_the_modules_are_found() -> None:
    assert {"wire.datagram", "kpaxosd.paxos.proposer", "kpaxosd.daemon", "devices.engine",
            "clients.client"} <= set(MODULES)
    assert all(importlib.util.find_spec(name) for name in ("wire", "devices", "clients"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    allowed = set(LAYERS[:LAYERS.index(layer_of(module)) + 1])
    upward = sorted(name for name in set(imports_of(module))
                    if layer_of(name) not in allowed)
    assert not upward, f"{module} ({layer_of(module)}) imports from a layer above: {upward}"


def test_no_module_import_is_a_cycle() -> None:
    graph = {module: {name for name in imports_of(module) if name in MODULES}
             for module in MODULES}
    # A package's __init__ importing its modules is no cycle; a module importing its
    # package's __init__ (which imports the module) is.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = [*visiting[visiting.index(module):], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        visiting.append(module)
        for name in sorted(graph[module]):
            visit(name)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
