"""The Paxos core does no I/O, reads no clock and draws no global randomness.

Checked on the source (AST), so an import hidden in a function is caught too. The
only exception: ``random`` under ``if TYPE_CHECKING:``, to name ``random.Random``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kpaxosd.paxos

PACKAGE = Path(kpaxosd.paxos.__file__).parent
FORBIDDEN = {
    "trio",
    "socket",
    "select",
    "selectors",
    "time",
    "os",
    "asyncio",
    "threading",
    "devices",
}
TYPE_ONLY = {"random"}
MODULES = sorted(PACKAGE.glob("*.py"))


def imported(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module, under TYPE_CHECKING) for every import in the module."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for child in node.body:
                type_only.update(id(n) for n in ast.walk(child))
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "use absolute imports"
            found.append((node.module or "", id(node) in type_only))
    return found


def test_every_module_is_checked() -> None:
    assert {p.name for p in MODULES} >= {
        "__init__.py",
        "acceptor.py",
        "proposer.py",
        "learner.py",
        "node.py",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    for module, type_checking_only in imported(ast.parse(path.read_text())):
        top = module.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {module}"
        if top in TYPE_ONLY:
            assert type_checking_only, f"{path.name} imports {module} outside TYPE_CHECKING"
        if top == "kpaxosd":
            assert module.startswith("kpaxosd.paxos"), f"{path.name} imports {module}"


def test_the_checker_catches_hidden_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import random\n"
        "def f():\n    import time\n    from kpaxosd import daemon\n"
    )
    assert imported(tree) == [
        ("typing", False),
        ("random", True),
        ("time", False),
        ("kpaxosd", False),
    ]


def test_public_surface() -> None:
    assert sorted(kpaxosd.paxos.__all__) == sorted(
        name
        for name in dir(kpaxosd.paxos)
        if (not name.startswith("_") and name[0].isupper()) or name == "MAX_PROPOSERS"
    )
