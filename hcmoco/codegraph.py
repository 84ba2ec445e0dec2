"""The package modules a command runs: the static import closure of its module.

Read from the source (ast), not from `sys.modules`, so the answer does not depend on what else a
process happened to import, and it is known before anything runs. It serves the code version of
a checkpoint key (hcmoco/train/resume.py) and the code dependencies of a workflow stage.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "hcmoco"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(name: str, package_dir: Path | None = None) -> Path | None:
    """The source file of package module `name` (a module or a package's __init__) in the package
    at `package_dir` (this installation's by default), else None."""
    package_dir = PACKAGE_DIR if package_dir is None else package_dir
    parts = name.split(".")[1:]
    if not parts:
        return package_dir / "__init__.py"
    for candidate in (package_dir.joinpath(*parts[:-1], parts[-1] + ".py"), package_dir.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str, file: Path) -> set[str]:
    """Package modules `file` imports (absolute or relative; `from m import x` counts m and m.x)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] == PACKAGE}


@lru_cache(maxsize=None)
def closure(module: str, package_dir: Path | None = None) -> tuple[str, ...]:
    """Sorted names of `module` and every package module it imports, directly or not (a
    module's parent packages included: importing a.b runs a/__init__.py), read from the sources
    of the package at `package_dir`."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or (file := module_file(name, package_dir)) is None:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*parents, *_imports(name, file)]
    return tuple(sorted(seen))


def code_digest(module: str) -> str:
    """sha256 (16 hex digits) of the sources of `module`'s import closure."""
    h = hashlib.sha256()
    for name in closure(module):
        h.update(name.encode() + b"\0" + module_file(name).read_bytes() + b"\0")
    return h.hexdigest()[:16]
