"""The `hcmoco` command: lists the package's command-line modules and runs one by name.

    hcmoco --help                      every command with its one-line description
    hcmoco generate --help             the same as `python -m hcmoco.synth.generate --help`
    hcmoco train.pretrain --stage 1 ...

A command is any module of the package with a `main(argv)` and an `if __name__ == "__main__"`
guard; it is found by reading the sources (no module is imported until one is run, so the
listing does not load torch). A command is named by its last dotted component where that is
unique in the package, and always by its path below `hcmoco` (e.g. `synth.generate`).
"""
from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Command:
    module: str  # below the package, e.g. "synth.generate"
    summary: str  # first paragraph of the module docstring, on one line


def _command(path: Path) -> Command | None:
    source = path.read_text(encoding="utf-8")
    if "def main(" not in source or "__main__" not in source:  # cheap filter before parsing
        return None
    tree = ast.parse(source, filename=str(path))
    if not any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
        return None
    module = ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    if module == "cli":
        return None
    paragraph = (ast.get_docstring(tree) or "").strip().split("\n\n")[0]
    return Command(module, " ".join(paragraph.split()))


def discover() -> list[Command]:
    """Every command module of the package, sorted by module path."""
    found = (_command(path) for path in sorted(PACKAGE_DIR.rglob("*.py")))
    return [c for c in found if c is not None]


def names(commands: Sequence[Command]) -> dict[str, Command]:
    """Name -> command: each module path, plus its last component where no other module shares it."""
    short: dict[str, list[Command]] = {}
    for c in commands:
        short.setdefault(c.module.rpartition(".")[2], []).append(c)
    table = {c.module: c for c in commands}
    table.update({name: cs[0] for name, cs in short.items() if len(cs) == 1})
    return table


def _short(c: Command, table: dict[str, Command]) -> str:
    last = c.module.rpartition(".")[2]
    return last if table.get(last) is c else c.module


def usage(commands: Sequence[Command]) -> str:
    table = names(commands)
    width = max(len(_short(c, table)) for c in commands)
    module_width = max(len(c.module) for c in commands)
    lines = ["usage: hcmoco <command> [args...]   (hcmoco <command> --help for its options)", "",
             "commands, with the module each also runs as (`python -m hcmoco.<module>`):"]
    lines += [f"  {_short(c, table):<{width}}  {c.module:<{module_width}}  {c.summary}" for c in commands]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = discover()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(commands))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = names(commands).get(name)
    if command is None:
        print(f"error: {name}: unknown command (`hcmoco --help` lists them)", file=sys.stderr)
        return 2
    run = importlib.import_module(f"{__package__}.{command.module}").main
    saved, sys.argv[0] = sys.argv[0], f"hcmoco {name}"  # argparse's usage line names the command
    try:
        return run(rest) or 0
    finally:
        sys.argv[0] = saved


if __name__ == "__main__":
    raise SystemExit(main())
