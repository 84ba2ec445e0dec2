"""Parameters: one base file plus a profile overlay, validated against one JSON Schema.

`params/params.yaml` holds every key with the default profile's values and names the active
profile; `params/profiles/<profile>.yaml` overrides a subset. Snakemake, DVC and every CLI
resolve parameters through `load_params`, so all three see the same values and the same errors.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from hcmoco.errors import HcmocoError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"
DEFAULT_PARAMS = Path("params/params.yaml")


class ParamsError(HcmocoError):
    """A parameter file is missing, malformed or violates the schema (one line, names the key)."""


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int):
        super().__init__(f"line {line}: {key}: duplicate key (first given on line {first})")


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain PyYAML keeps the last one
    silently, so an edit to the first copy would have no effect."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _refuse_duplicates(node, "")
        return node


def _refuse_duplicates(node: yaml.Node, prefix: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: walked once already (and may be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":  # `<<:` entries may be overridden by design
                continue
            name = f"{prefix}{key.value}" if isinstance(key, yaml.ScalarNode) else f"{prefix}<{key.tag}>"
            ident = (key.tag, key.value) if isinstance(key, yaml.ScalarNode) else None
            if ident is not None and ident in first:
                raise DuplicateKeyError(name, key.start_mark.line + 1, first[ident])
            if ident is not None:
                first[ident] = key.start_mark.line + 1
            _refuse_duplicates(value, name + ".", seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{prefix}{i}.", seen)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line: where (line, column) and what the parser found wrong."""
    if isinstance(err, DuplicateKeyError):
        return str(err)
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        context = f" ({err.context})" if err.context else ""
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {err.problem}{context}"
    lines = str(err).strip().splitlines()
    return f"not valid YAML ({lines[0] if lines else type(err).__name__})"


def read_yaml(path: str | Path):
    """yaml.safe_load of a file, refusing duplicate keys; errors are one ParamsError naming the
    file (and the line)."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not valid YAML (not UTF-8 text: {err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: {_yaml_problem(err)}") from None


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    return data


# Free-form mappings (their keys are names, not parameters): an overlay replaces them whole.
REPLACED_WHOLE = {"finetune.grids", "synth.domains", "real.datasets", "finetune.tasks.densepose.rcnn.detector"}


def _overlay(base: dict, over: dict, source: Path, prefix: str = "") -> dict:
    """Deep-merge `over` into a copy of `base`; a key absent from `base` is an error.

    Mappings merge key by key, except REPLACED_WHOLE; any other value (lists included) replaces
    the base value.
    """
    merged = copy.deepcopy(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if key not in merged:
            raise ParamsError(f"{source}: {dotted}: unknown key (not in the base params)")
        if isinstance(value, dict) and isinstance(merged[key], dict) and dotted not in REPLACED_WHOLE:
            merged[key] = _overlay(merged[key], value, source, dotted + ".")
        else:
            merged[key] = value
    return merged


def _format_error(err, source: str) -> str:
    """One line naming the dotted key path of a jsonschema error."""
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        key = f"{path}.{extra[0]}" if path else extra[0]
        return f"{source}: {key}: unknown key (allowed here: {', '.join(allowed)})"
    return f"{source}: {path or '<top>'}: {err.message}"


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate(params: dict, source: str = "params") -> None:
    """Raise ParamsError with one line for the first (most relevant) schema violation."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ParamsError(_format_error(jsonschema.exceptions.best_match(errors), source))


def profile_path(params_file: Path, profile: str) -> Path:
    return Path(params_file).parent / "profiles" / f"{profile}.yaml"


def load_params(params_file: str | Path = DEFAULT_PARAMS, profile: str | None = None) -> dict:
    """Resolve base + profile overlay and validate. `profile=None` takes the base file's choice."""
    params_file = Path(params_file)
    base = _read_yaml(params_file)
    name = profile if profile is not None else base.get("profile", "default")
    overlay_file = profile_path(params_file, str(name))
    if not overlay_file.is_file():
        known = sorted(p.stem for p in overlay_file.parent.glob("*.yaml"))
        raise ParamsError(f"{params_file}: profile: unknown profile {name!r} "
                          f"(no {overlay_file}; known: {', '.join(known)})")
    overlay = _read_yaml(overlay_file)
    if "profile" in overlay:
        raise ParamsError(f"{overlay_file}: profile: an overlay cannot choose a profile")
    # DVC tracks each stage's section in the overlay too, and fails on an absent key
    for section in base:
        if section != "profile" and section not in overlay:
            raise ParamsError(f"{overlay_file}: {section}: missing section "
                              f"(write `{section}: {{}}` to keep the base values)")
    merged = _overlay(base, overlay, overlay_file)
    merged["profile"] = name
    source = f"{params_file} + {overlay_file}"
    validate(merged, source=source)
    check_references(merged, source)
    check_values(merged, source)
    return merged


def _subset(values, allowed, key: str, source: str, what: str) -> None:
    for i, value in enumerate(values):
        _member(value, allowed, f"{key}.{i}", source, what)


def _member(value, allowed, key: str, source: str, what: str) -> None:
    if value not in allowed:
        raise ParamsError(f"{source}: {key}: {value!r} is not one of {what} ({', '.join(map(str, allowed))})")


def check_references(params: dict, source: str = "params") -> None:
    """Keys that name other keys' values: every task's domain is rendered, fine-tuning and
    frozen-feature cells have split files, inits are pre-training outputs. One line naming the key."""
    domains, tasks = [*params["synth"]["domains"], *params["real"]["datasets"]], params["splits"]["tasks"]
    if clash := set(params["synth"]["domains"]) & set(params["real"]["datasets"]):
        raise ParamsError(f"{source}: real.datasets.{sorted(clash)[0]}: also a synth.domains name")
    for task, spec in tasks.items():
        if spec["domain"] not in domains:
            raise ParamsError(f"{source}: splits.tasks.{task}.domain: {spec['domain']!r} is not a "
                              f"synth.domains or real.datasets entry ({', '.join(domains)})")
    for role, domain in params["pretrain"]["sources"].items():
        _member(domain, domains, f"pretrain.sources.{role}", source, "the synth.domains or real.datasets")
    fractions, seeds = params["splits"]["fractions"], params["splits"]["seeds"]
    outputs = ["stage1", *params["pretrain"]["variants"], "imagenet"]
    ft = params["finetune"]
    _subset(ft["inits"], outputs, "finetune.inits", source, "the pre-training outputs")
    _subset(ft["fractions"], fractions, "finetune.fractions", source, "splits.fractions")
    _subset(ft["seeds"], seeds, "finetune.seeds", source, "splits.seeds")
    _subset(ft["tasks"]["pose3d"]["fractions"] or [], fractions, "finetune.tasks.pose3d.fractions", source,
            "splits.fractions")
    for init in ft["grids"]:
        if init not in ("scratch", *ft["inits"]):
            raise ParamsError(f"{source}: finetune.grids.{init}: not scratch or one of finetune.inits "
                              f"({', '.join(ft['inits'])})")
    for init, grid in ft["grids"].items():
        _subset(grid.get("fractions", []), fractions, f"finetune.grids.{init}.fractions", source, "splits.fractions")
        _subset(grid.get("seeds", []), seeds, f"finetune.grids.{init}.seeds", source, "splits.seeds")
    fz = params["frozen"]
    _subset(fz["inits"], outputs, "frozen.inits", source, "the pre-training outputs")
    _subset(fz["fractions"], fractions, "frozen.fractions", source, "splits.fractions")
    _subset(fz["seeds"], seeds, "frozen.seeds", source, "splits.seeds")
    vs = params["versatility"]
    _subset(vs["inits"], outputs, "versatility.inits", source, "the pre-training outputs")
    _member(vs["fraction"], fractions, "versatility.fraction", source, "splits.fractions")
    _subset(vs["seeds"], seeds, "versatility.seeds", source, "splits.seeds")


def check_values(params: dict, source: str = "params") -> None:
    """Values that only make sense together: caught here, before any job runs, not at the step
    that would use them."""
    ft = params["finetune"]
    if ft["min_steps"] > ft["max_steps"]:
        raise ParamsError(f"{source}: finetune.min_steps: {ft['min_steps']} is above finetune.max_steps "
                          f"{ft['max_steps']}")
    pt, synth = params["pretrain"], params["synth"]["domains"]
    sources = list(pt["sources"].values())
    # the bank has a row per training sample of the sources: known here for rendered domains;
    # real ones are checked against their data by check_bank_size
    if pt["sample_contrast"] == "bank" and all(d in synth for d in sources):
        _check_negatives(pt, {d: synth[d]["train"] for d in sources}, f"{source}: ", "pretrain.sources")


def _check_negatives(cfg: dict, sizes: dict, prefix: str, what: str) -> None:
    bank = sum(sizes.values())
    if cfg["negatives"] >= bank:
        parts = " + ".join(f"{name} {n}" for name, n in sizes.items())
        raise ParamsError(f"{prefix}pretrain.negatives: {cfg['negatives']} must be below the memory bank "
                          f"size {bank} (training samples of {what}: {parts})")


def check_bank_size(cfg: dict, data_dirs) -> None:
    """pretrain.negatives against the bank size of processed sources (their train/index.json
    sample counts), before a model is built. A missing or unreadable index is left to the data
    loader, which names it."""
    if cfg["sample_contrast"] != "bank":
        return
    sizes = {}
    for d in data_dirs:
        try:
            sizes[str(d)] = int(json.loads((Path(d) / "train" / "index.json").read_text())["num_samples"])
        except (OSError, ValueError, KeyError, TypeError):
            return
    _check_negatives(cfg, sizes, "", "--data")


def domain_dir(params: dict, domain: str, root: str | Path) -> Path:
    """A domain's processed data under a profile's data root: `<root>/real/<d>` for a
    real.datasets entry, else `<root>/synth/<d>` (rendered)."""
    return Path(root) / ("real" if domain in params["real"]["datasets"] else "synth") / domain


def task_domain(params: dict, task: str, option: str = "--task") -> str:
    """The domain of a downstream task of splits.tasks; an unknown task is one ParamsError."""
    tasks = params["splits"]["tasks"]
    if task not in tasks:
        raise ParamsError(f"{option}: unknown task {task!r} (known: {', '.join(tasks)})")
    return tasks[task]["domain"]


def finetune_cells(params: dict, init: str, task: str | None = None) -> list[tuple[float, int]]:
    """The (fraction, seed) cells of `task` fine-tuned from `init`: finetune.fractions (or the
    task's own `fractions`) x finetune.seeds, each replaced by the init's finetune.grids entry."""
    ft = params["finetune"]
    fractions = (ft["tasks"].get(task) or {}).get("fractions") or ft["fractions"]
    grid = {"fractions": fractions, "seeds": ft["seeds"], **ft["grids"].get(init, {})}
    return [(float(f), int(s)) for f in grid["fractions"] for s in grid["seeds"]]


VERSATILITY_EXPERIMENTS = ("crossmodal", "missing")


def cell_dir(root: str | Path, init: str, seed: int, fraction: float | None = None) -> Path:
    """Where one run of a grid lives: `<root>/init~I[/fraction~F]/seed~S`."""
    path = Path(root) / f"init~{init}"
    if fraction is not None:
        path = path / f"fraction~{fraction:g}"
    return path / f"seed~{seed}"


def finetune_plan(params: dict) -> list[tuple[str, str, float, int]]:
    """Every fine-tuning run the params define: (task, init, fraction, seed)."""
    return [(task, init, f, s) for task in params["splits"]["tasks"]
            for init in ["scratch", *params["finetune"]["inits"]] for f, s in finetune_cells(params, init, task)]


# Whole-image DensePose trains DensePose R-CNN (hcmoco.tasks.detection): no per-crop features to cache
WHOLE_IMAGE_PREPROCESSORS = ("densepose_coco_detection",)


def frozen_tasks(params: dict) -> list[str]:
    """The tasks of the frozen-feature protocol: every splits.tasks entry whose data are person
    crops, i.e. all but a task on a real.datasets entry of whole images (WHOLE_IMAGE_PREPROCESSORS)."""
    real = params["real"]["datasets"]
    return [task for task, spec in params["splits"]["tasks"].items()
            if real.get(spec["domain"], {}).get("preprocessor") not in WHOLE_IMAGE_PREPROCESSORS]


def frozen_cells(params: dict) -> list[tuple[float, int]]:
    """The (fraction, seed) cells of every frozen-feature job: frozen.fractions x frozen.seeds."""
    return [(float(f), int(s)) for f in params["frozen"]["fractions"] for s in params["frozen"]["seeds"]]


def frozen_plan(params: dict) -> list[tuple[str, str, float, int]]:
    """Every frozen-feature run the params define: (task, init, fraction, seed)."""
    return [(task, init, f, s) for task in frozen_tasks(params) for init in ["scratch", *params["frozen"]["inits"]]
            for f, s in frozen_cells(params)]


def versatility_plan(params: dict) -> list[tuple[str, str, int]]:
    """Every versatility run the params define: (experiment, init, seed)."""
    return [(e, init, s) for e in VERSATILITY_EXPERIMENTS for init in ["scratch", *params["versatility"]["inits"]]
            for s in params["versatility"]["seeds"]]


def section_digest(params: dict, *keys: str) -> str:
    """Canonical JSON of some dotted keys: Snakemake reruns a rule when this string changes."""
    picked = {key: get(params, key) for key in keys}
    return json.dumps(picked, sort_keys=True, separators=(",", ":"))


def get(params: dict, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params: {dotted}: missing")
        node = node[part]
    return node
