"""The package's layers (docs/ARCHITECTURE.md): a module imports its own layer or lower ones.

Read from the static import graph (hcmoco.codegraph: every import statement of the sources,
imports inside functions included), so the rule holds for what a command could ever import.
"""
from __future__ import annotations

from pathlib import Path

from hcmoco.codegraph import PACKAGE, PACKAGE_DIR, _imports, module_file

# Lowest first. A module belongs to the entry with its longest prefix; a package (folder) is named
# once for everything in it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("hcmoco", "hcmoco.errors", "hcmoco.atomic", "hcmoco.config", "hcmoco.precision", "hcmoco.runlog",
              "hcmoco.codegraph", "hcmoco.cli_common")),
    ("processed data", ("hcmoco.processed",)),
    ("data sources", ("hcmoco.synth", "hcmoco.prepare")),
    ("models, losses, metrics", ("hcmoco.models", "hcmoco.losses", "hcmoco.eval")),
    ("tasks", ("hcmoco.tasks",)),
    ("training", ("hcmoco.train",)),
    ("results", ("hcmoco.results",)),
    ("commands and workflow", ("hcmoco.cli", "hcmoco.bench", "hcmoco.calibration", "hcmoco.faults",
                               "hcmoco.dvc_export", "hcmoco.stages", "hcmoco.cluster")),
]
# Packages of one layer that must not import each other: the renderer and the real-data
# preprocessors share only what lies below them (the processed format, keypoint layouts).
APART = [("hcmoco.synth", "hcmoco.prepare")]
# Known wrong-way imports, each with what removes it. An entry that no longer matches an
# import fails the test too, so the list only shrinks.
ALLOWED: dict[tuple[str, str], str] = {
}


def _owner(module: str, names: tuple[str, ...]) -> str | None:
    hits = [n for n in names if module == n or module.startswith(n + ".")]
    return max(hits, key=len) if hits else None


def layer_of(module: str, layers=LAYERS) -> int | None:
    """Index of the layer of `module` (the entry with the longest matching prefix), None if none."""
    best = None
    for i, (_, names) in enumerate(layers):
        owner = _owner(module, names)
        if owner is not None and (best is None or len(owner) > len(best[1])):
            best = (i, owner)
    return None if best is None else best[0]


def package_modules(root: Path = PACKAGE_DIR) -> list[str]:
    """Every module of the package at `root` (a package by its __init__), from the files."""
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join([PACKAGE, *parts]))
    return names


def import_graph(modules: list[str]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (names that are not modules, e.g. a class
    imported from a module, are dropped)."""
    graph = {}
    for name in modules:
        file = module_file(name)
        graph[name] = {m for m in _imports(name, Path(file)) if module_file(m) is not None and m != name}
    return graph


def violations(graph: dict[str, set[str]], layers=LAYERS, apart=APART) -> list[str]:
    """One line per import that breaks the rule: a higher layer, or a package kept apart."""
    found = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = layer_of(source, layers), layer_of(target, layers)
            if a is None or b is None:
                continue  # reported by the coverage check
            if b > a:
                found.append(f"{source} ({layers[a][0]}) imports {target} ({layers[b][0]}), a higher layer")
            for p, q in apart:
                for x, y in ((p, q), (q, p)):
                    if _owner(source, (x,)) and _owner(target, (y,)):
                        found.append(f"{source} imports {target}: {x} and {y} are kept apart")
    return found


def test_every_module_has_a_layer():
    missing = [m for m in package_modules() if layer_of(m) is None]
    assert not missing, f"no layer for {missing}: add them to LAYERS here and to docs/ARCHITECTURE.md"


def test_no_module_imports_a_higher_layer():
    graph = import_graph(package_modules())
    assert sum(map(len, graph.values())) > 200  # the graph was read (not vacuously empty)
    assert "hcmoco.processed.shards" in graph["hcmoco.synth.generate"]
    known = {f"{s} ({LAYERS[layer_of(s)][0]}) imports {t} ({LAYERS[layer_of(t)][0]}), a higher layer"
             for s, t in ALLOWED}
    found = violations(graph)
    assert [v for v in found if v not in known] == []
    stale = sorted(known - set(found))
    assert not stale, f"no longer imported, remove from ALLOWED: {stale}"


def test_the_rule_catches_a_wrong_way_import():
    """The same check on a small graph: a downward import passes, an upward one, an unlisted
    pair of one layer and an import across the kept-apart packages are reported."""
    graph = {
        "hcmoco.train.pretrain": {"hcmoco.models.hrnet", "hcmoco.processed.shards", "hcmoco.train.runtime"},
        "hcmoco.models.hrnet": {"hcmoco.precision"},
        "hcmoco.eval.retrieval": {"hcmoco.models.hrnet"},
    }
    assert violations(graph) == []
    graph["hcmoco.eval.retrieval"].add("hcmoco.train.pretrain")
    graph["hcmoco.processed.preview"] = {"hcmoco.synth.skeleton"}
    graph["hcmoco.synth.generate"] = {"hcmoco.prepare.writer"}
    assert violations(graph) == [
        "hcmoco.eval.retrieval (models, losses, metrics) imports hcmoco.train.pretrain (training), a higher layer",
        "hcmoco.processed.preview (processed data) imports hcmoco.synth.skeleton (data sources), a higher layer",
        "hcmoco.synth.generate imports hcmoco.prepare.writer: hcmoco.synth and hcmoco.prepare are kept apart",
    ]


def test_a_new_module_file_is_placed_and_checked(tmp_path, monkeypatch):
    """A module added under a layer's package is found from the files and its imports checked."""
    import hcmoco.codegraph as codegraph

    root = tmp_path / PACKAGE
    for rel in ("__init__.py", "losses/__init__.py", "train/__init__.py", "train/loop.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "losses" / "bad.py").write_text("from hcmoco.train.loop import run\n")
    monkeypatch.setattr(codegraph, "PACKAGE_DIR", root)  # module_file resolves names there
    modules = package_modules(root)
    assert "hcmoco.losses.bad" in modules
    assert violations(import_graph(modules)) == [
        "hcmoco.losses.bad (models, losses, metrics) imports hcmoco.train.loop (training), a higher layer"]
