# Helpers only: parameters, each rule's directives, wildcard constraints. No rules here.
from hcmoco.config import ParamsError, frozen_tasks, load_params
from hcmoco.stages import VERSATILITY_EXPERIMENTS, finetune_inits, frozen_inits, jobs_table, snakemake_rules


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
VARIANTS = list(PARAMS["pretrain"]["variants"])
FINETUNE_INITS = finetune_inits(PARAMS)
# the frozen-feature protocol runs on the tasks whose data are person crops (hcmoco.config.frozen_tasks)
FROZEN_TASKS = frozen_tasks(PARAMS)
FROZEN_INITS = frozen_inits(PARAMS)
REAL = PARAMS["real"]["datasets"]
RAW = sorted({raw for spec in REAL.values() for raw in [spec["raw"], *spec.get("also", [])]})

# Each rule's input, output, log, benchmark, params, threads and shell command for this profile,
# from the stage table hcmoco/stages.py (the root dvc.yaml is generated from the same table).
# `params.values` digests the params keys the command reads (a change reruns the rule); `code`
# inputs are the package files the command's module imports (an edit reruns the rule).
RULES = snakemake_rules(PARAMS, PROFILE, directory=directory)


wildcard_constraints:
    domain="|".join(DOMAINS),
    dataset="|".join(REAL),
    raw="|".join(RAW),
    task="|".join(TASKS),
    variant="|".join(VARIANTS),
    init="|".join(dict.fromkeys(FINETUNE_INITS + FROZEN_INITS)),
    experiment="|".join(VERSATILITY_EXPERIMENTS),
