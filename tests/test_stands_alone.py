"""The repository stands alone: nothing in it needs a file beside or outside it.

A clone is all a newcomer gets, so no tracked file may point at a folder next to the
checkout or at design notes that live elsewhere, and every page of docs/ that the
source cites must be there (docs/architecture.md, docs/devices.md and their kin).
The files are the ones git tracks; outside a git checkout (an unpacked archive) they
are the files of the tree, without the virtual environment and the caches.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: What a file standing alone does not mention, spelled in pieces so that this file
#: does not mention them either.
FOREIGN = [".." + "/" + "shared", "DESIGN" + ".md", "STYLE" + ".md"]
#: A page of docs/ cited by path.
CITED_PAGE = re.compile(r"\bdocs/[a-z_]+\.md\b")
#: A relative link in Markdown: ``](path)``, not a URL and not an anchor of the page.
MARKDOWN_LINK = re.compile(r"\]\((?![a-z]+:|#)([^)#\s]+)")
#: Folders of the tree that are not the project's files: git's, the venv, caches.
NOT_SOURCE = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache",
              ".pytest_cache", ".hypothesis"}


def tracked_files(root: Path = REPO) -> list[Path]:
    """The files git tracks under ``root``, or, outside a git checkout, the tree's."""
    try:
        result = subprocess.run(["git", "-C", str(root), "ls-files", "-z"],
                                capture_output=True, check=False, timeout=60)
    except FileNotFoundError:  # no git on this machine
        return walked_files(root)
    if result.returncode != 0:  # not a git checkout
        return walked_files(root)
    names = [name for name in result.stdout.decode().split("\0") if name]
    # A tracked file deleted in the working tree cannot refer to anything.
    return [root / name for name in names if (root / name).is_file()]


def walked_files(root: Path = REPO) -> list[Path]:
    """Every file of the tree under ``root`` but those in :data:`NOT_SOURCE` folders."""
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders
                         if name not in NOT_SOURCE and not name.endswith(".egg-info")]
        found.extend(Path(folder) / name for name in files)
    return found


def test_the_walk_finds_every_tracked_file() -> None:
    walked = set(walked_files())
    missing = [str(path.relative_to(REPO)) for path in tracked_files() if path not in walked]
    assert not missing, f"the fallback outside git would miss: {missing}"


def test_no_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        data = path.read_bytes()
        for name in FOREIGN:
            if name.encode() in data:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert not offenders, "files citing what the repository does not hold:\n" + "\n".join(
        offenders)


def test_every_page_the_source_cites_exists() -> None:
    cited: dict[str, list[str]] = {}
    for path in tracked_files():
        if path.suffix == ".py":
            for page in CITED_PAGE.findall(path.read_text(errors="replace")):
                cited.setdefault(page, []).append(str(path.relative_to(REPO)))
    assert cited, "no source file cites a page of docs/: is the pattern right?"
    missing = {page: files for page, files in cited.items() if not (REPO / page).is_file()}
    assert not missing, f"pages cited but missing (page: citing files): {missing}"


def test_every_relative_link_of_the_markdown_resolves() -> None:
    broken = []
    for path in tracked_files():
        if path.suffix == ".md":
            for target in MARKDOWN_LINK.findall(path.read_text(errors="replace")):
                if not (path.parent / target).exists():
                    broken.append(f"{path.relative_to(REPO)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)
