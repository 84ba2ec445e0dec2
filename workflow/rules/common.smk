# Helpers only: parameters, input functions, wildcard constraints. No rules here.
from pathlib import Path

from hcmoco.config import ParamsError, load_params, section_digest


PARAMS_FILE = "params/params.yaml"


def _resolve_params():
    """Base params + the chosen profile, validated before any job starts."""
    base = dict(config)
    base.pop("profile", None)
    try:
        params = load_params(PARAMS_FILE, config.get("profile"))
    except ParamsError as err:
        raise SystemExit(f"error: {err}")
    stray = sorted(k for k in base if k not in params)
    if stray:
        raise SystemExit(f"error: --config {stray[0]}: unknown key (only `profile` is set on the "
                         "command line; other values live in params/)")
    return params


PARAMS = _resolve_params()
PROFILE = PARAMS["profile"]
DOMAINS = list(PARAMS["synth"]["domains"])
TASKS = list(PARAMS["splits"]["tasks"])

# The package modules each command runs: inputs here, deps in dvc.yaml (a test keeps them equal).
CODE = {
    "generate": ["hcmoco/data/generate.py", "hcmoco/data/shards.py", "hcmoco/data/densepose_coco.py"]
    + sorted(str(p) for p in Path("hcmoco/data/synth").glob("*.py")),
    "split": ["hcmoco/data/splits.py", "hcmoco/data/shards.py"],
    "preview": ["hcmoco/data/preview.py", "hcmoco/data/shards.py"],
}


wildcard_constraints:
    domain="|".join(DOMAINS),
    task="|".join(TASKS),


def synth_values(wildcards):
    """The parameters one domain's data depends on (a change re-renders that domain)."""
    return section_digest(PARAMS, "synth.seed", "synth.resolution", "synth.shard_size",
                          "synth.densepose_points_per_part", f"synth.domains.{wildcards.domain}")


def split_values(wildcards):
    return section_digest(PARAMS, "splits.seed", "splits.val_fraction", "splits.fractions",
                          "splits.seeds", f"splits.tasks.{wildcards.task}")


def preview_values(wildcards):
    return section_digest(PARAMS, "preview.samples")


def task_data(wildcards):
    """The processed domain directory a task's splits are drawn from."""
    return f"data/{PROFILE}/synth/{PARAMS['splits']['tasks'][wildcards.task]['domain']}"
