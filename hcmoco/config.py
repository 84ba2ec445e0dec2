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


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
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
    return merged


def _subset(values, allowed, key: str, source: str, what: str) -> None:
    for i, value in enumerate(values):
        _member(value, allowed, f"{key}.{i}", source, what)


def _member(value, allowed, key: str, source: str, what: str) -> None:
    if value not in allowed:
        raise ParamsError(f"{source}: {key}: {value!r} is not one of {what} ({', '.join(map(str, allowed))})")


def check_references(params: dict, source: str = "params") -> None:
    """Keys that name other keys' values: every task's domain is rendered, fine-tuning cells
    have split files, inits are pre-training outputs. One line naming the key."""
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
    vs = params["versatility"]
    _subset(vs["inits"], outputs, "versatility.inits", source, "the pre-training outputs")
    _member(vs["fraction"], fractions, "versatility.fraction", source, "splits.fractions")
    _subset(vs["seeds"], seeds, "versatility.seeds", source, "splits.seeds")


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
