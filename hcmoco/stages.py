"""The workflow's stages, written once: command, params keys, inputs, outputs, log, threads.

Snakemake's rules (workflow/rules/*.smk, through the helpers of workflow/rules/common.smk) and
the DVC pipelines are both made from this table:

    python -m hcmoco.stages --write    # regenerate the root dvc.yaml (make dvc-yaml)
    python -m hcmoco.stages --check    # exit 1 when dvc.yaml is not what the table gives

Templates: `{profile}` is the profile, `{<wildcard>}` a Snakemake wildcard. A command is written
in Snakemake's shell syntax (`{input.x}`, `{output.x}`, `{params.x}`, `{wildcards.x}`, `{log}`);
for DVC each placeholder becomes the path (or `${...}` expression) it stands for.

Code dependencies are not listed by hand: a stage depends on the package files its command's
module imports, directly or not (`module_files`, from the module's static import closure, the one
hcmoco.codegraph computes for checkpoint keys). Both tools get the same files: Snakemake as the
rule's `code` inputs (an edit re-plans the stage), DVC as the stage's deps.

The root dvc.yaml is templated on the base params (DVC's templating cannot see a profile overlay);
a rule with a task -> domain lookup or a `scratch` init without pre-training has one DVC group per
case (`dvc`). Rules with `dvc=()` are Snakemake-only: the real-data rules (their DVC form is the
per-profile export, hcmoco.dvc_export) and `jobs`, which gathers Snakemake's benchmark files.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from hcmoco.codegraph import PACKAGE, closure, module_file
from hcmoco.config import domain_dir, frozen_tasks, section_digest

PARAMS_FILE = "params/params.yaml"
OVERLAY = "params/profiles/{profile}.yaml"
ROOT_DVC = Path("dvc.yaml")
WRITE_COMMAND = "python -m hcmoco.stages --write"
VERSATILITY_EXPERIMENTS = ("crossmodal", "missing")
VERSATILITY_TASK = "depth_parsing"
IMAGENET_WEIGHTS = "data/raw/imagenet/hrnetv2_w18_imagenet_pretrained.pth"


# --- the table's types ------------------------------------------------------------------------

@dataclass(frozen=True)
class Out:
    """An output: a path template; a folder (`directory`); a DVC metrics file (`metric`)."""
    path: str
    directory: bool = False
    metric: bool = False


@dataclass(frozen=True)
class Helper:
    """An input (or Snakemake param) that is not one path template: `name` names an entry of
    `_helpers(params, profile)`, whose value is what Snakemake's directive takes (a path, a list,
    or a function of the job's wildcards); the root dvc.yaml takes the group's `deps` template
    (or `_dvc_helper`'s)."""
    name: str


@dataclass(frozen=True)
class Group:
    """One stage (or foreach / matrix group) of the root dvc.yaml for (part of) a rule's jobs.

    foreach: a params key whose mapping (or a list) gives the members, `wildcard` is its key;
    matrix: {wildcard: params key}; fixed: wildcard values the group's jobs share (e.g. init
    scratch); deps: the DVC template of an input that no path template gives (None: left out)."""
    name: str
    foreach: str | tuple[str, ...] | None = None
    wildcard: str | None = None
    matrix: dict[str, str] | None = None
    fixed: dict[str, str] = field(default_factory=dict)
    deps: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One rule: its command, what it reads and writes, its log and threads.

    module: the CLI module whose import closure is the code dependency (a template when the
    module is chosen per job: `{preprocessor}`); None: no code dependency (a download).
    params: the params keys the command reads (Snakemake's `values` digest, DVC's params).
    overlay: how the profile overlay is tracked in DVC: by the keys' top-level sections
    ("sections") or by the keys themselves ("keys"). paths: path params of the command.
    threads: a params key or a number. dvc: the root dvc.yaml's groups; () = Snakemake-only."""
    name: str
    cmd: str
    module: str | None
    outputs: dict[str, Out]
    log: str
    inputs: dict[str, str | Helper] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    overlay: str = "sections"
    paths: dict[str, str | Helper] = field(default_factory=dict)
    threads: str | int = 1
    dvc: tuple[Group, ...] = ()
    wildcards: tuple[str, ...] = ()

    @property
    def benchmark(self) -> str:
        """Snakemake's benchmark file: the log's path under benchmarks/, as .tsv."""
        return "benchmarks/" + re.sub(r"\.log$", ".tsv", self.log.removeprefix("logs/"))

    def keys(self, wildcards: dict[str, str]) -> list[str]:
        """The params keys one job reads."""
        return [key.format(**wildcards) for key in self.params]


def _cli(module: str, args: str, stage: str = "", launch: str = "python") -> str:
    """The command of a package CLI: common options first (`stage` before --log, as the
    pre-training CLI takes it), then its own; `{launch}` stands for `launcher(params)`."""
    return (f"{launch} -m {module} --params {{params.file}} --profile {{params.profile}} {stage}--log {{log}} "
            + args)


def launcher(params: dict) -> str:
    """What starts a pre-training job: python, or torchrun with pretrain.processes processes (the
    CLI takes the world size from torchrun; batch_size stays the global batch)."""
    processes = int(params["pretrain"].get("processes", 1))
    return "python" if processes == 1 else f"torchrun --standalone --nproc-per-node {processes}"


_PRETRAIN_SHARED = tuple(f"pretrain.{k}" for k in (
    "init_weights", "seed", "device", "precision", "threads", "backbone", "sample_contrast", "optimizer",
    "embed_dim", "tau", "batch_size", "lr", "lr_min", "momentum", "weight_decay", "negatives",
    "bank_momentum", "dense_cells", "checkpoint_every"))
# a grid job reads the shared fine-tuning keys and its task's head keys (the init's own cells come
# from finetune.inits and finetune.grids, both shared)
_FINETUNE = tuple(f"finetune.{k}" for k in (
    "inits", "grids", "fractions", "seeds", "device", "precision", "threads", "optimizer", "lr", "lr_min",
    "momentum", "weight_decay", "batch_size", "eval_batch_size", "epochs", "min_steps", "max_steps",
    "eval_every", "checkpoint_every", "freeze_backbone", "miou", "densepose_box_ignore")) + (
    "finetune.tasks.{task}", "pretrain.backbone", "splits.tasks.{task}")
# the frozen keys, the fine-tuning keys they share (hcmoco.train.frozen.FINETUNE_KEYS) and the
# task's head and loss keys
_FROZEN = tuple(f"frozen.{k}" for k in ("inits", "fractions", "seeds", "steps", "batch_size", "lr", "eval_every")) + (
    "finetune.threads", "finetune.device", "finetune.miou", "finetune.densepose_box_ignore",
    "finetune.tasks.{task}", "pretrain.backbone", "splits.tasks.{task}")
_GRID_ARGS = ("--task {wildcards.task} --init {wildcards.init} --pretrained {params.pretrained}"
              " --data-root {params.data_root} --splits {input.splits} --out {output.%s}")
_GRID_PATHS = {"pretrained": "models/{profile}/pretrain", "data_root": "data/{profile}"}
_GRID_INPUTS = {"models": Helper("init_model"), "data": Helper("task_data"), "splits": "data/{profile}/splits/{task}"}


def _grid_groups(name: str, inits: str) -> tuple[Group, ...]:
    """Scratch per task (its task's domain, no pre-training), then a task x init matrix (DVC's
    matrix has no task -> domain lookup, so these depend on every rendered domain)."""
    return (Group(f"{name}_scratch", foreach="splits.tasks", wildcard="task", fixed={"init": "scratch"},
                  deps={"models": None, "data": "data/${profile}/synth/${item.domain}"}),
            Group(name, matrix={"task": "splits.tasks", "init": inits},
                  deps={"models": "models/${profile}/pretrain/${item.init}", "data": "data/${profile}/synth"}))


STAGES: tuple[Stage, ...] = (
    Stage("fetch", "python -m hcmoco.prepare.fetch --dataset {wildcards.raw} --out {params.out} >> {log} 2>&1",
          module=None,  # a download: rerunning it after a code edit would fetch again
          outputs={"manifest": Out("data/raw/{raw}/MANIFEST.json")}, log="logs/data/raw/{raw}.log",
          paths={"out": "data/raw/{raw}"}, wildcards=("raw",)),
    Stage("prepare", "python -m hcmoco.prepare.{params.module} --raw {params.raw} --out {output.data}"
          " --resolution {params.resolution} --workers {threads} {params.options} >> {log} 2>&1",
          module="hcmoco.prepare.{preprocessor}",
          inputs={"manifest": Helper("raw_manifest"), "also": Helper("also_manifests")},
          outputs={"data": Out("data/{profile}/real/{dataset}", directory=True)},
          log="logs/data/{profile}/real/{dataset}.log",
          params=("real.resolution", "real.datasets.{dataset}"), overlay="keys",
          paths={"raw": Helper("raw_dir"), "module": Helper("preprocessor"), "options": Helper("preprocessor_options"),
                 "resolution": Helper("real_resolution")},
          threads=8, wildcards=("dataset",)),
    Stage("imagenet_init", "(mkdir -p {output.model} && python -m hcmoco.models.imagenet --weights {input.weights}"
          " --out {output.model}/rgb_backbone.pt && python -m hcmoco.models.imagenet --weights {input.weights}"
          " --modality depth --out {output.model}/depth_backbone.pt) >> {log} 2>&1",
          module="hcmoco.models.imagenet", inputs={"weights": IMAGENET_WEIGHTS},
          outputs={"model": Out("models/{profile}/pretrain/imagenet", directory=True)},
          log="logs/models/{profile}/pretrain/imagenet.log"),
    Stage("generate", _cli("hcmoco.synth.generate", "--domain {wildcards.domain} --out {output.data}"),
          module="hcmoco.synth.generate",
          outputs={"data": Out("data/{profile}/synth/{domain}", directory=True)},
          log="logs/data/{profile}/synth/{domain}.log",
          params=("synth.seed", "synth.resolution", "synth.shard_size", "synth.densepose_points_per_part",
                  "synth.domains.{domain}"),
          # one worker per job (the bytes do not depend on it): a 2-thread job waits for both cores at
          # once, and the 1-thread jobs that keep filling them starved it (the last domain rendered 25
          # minutes into the default DAG); generations run two at a time instead
          threads=1, wildcards=("domain",), dvc=(Group("generate", foreach="synth.domains", wildcard="domain"),)),
    Stage("split", _cli("hcmoco.processed.splits", "--task {wildcards.task} --data {input.data} --out {output.splits}"),
          module="hcmoco.processed.splits", inputs={"data": Helper("task_data")},
          outputs={"splits": Out("data/{profile}/splits/{task}", directory=True)},
          log="logs/data/{profile}/splits/{task}.log",
          params=("splits.seed", "splits.val_fraction", "splits.fractions", "splits.seeds", "splits.tasks.{task}"),
          wildcards=("task",),
          dvc=(Group("split", foreach="splits.tasks", wildcard="task",
                     deps={"data": "data/${profile}/synth/${item.domain}"}),)),
    Stage("preview", _cli("hcmoco.processed.preview", "--data {input.data} --out {output.png}"),
          module="hcmoco.processed.preview", inputs={"data": "data/{profile}/synth/{domain}"},
          outputs={"png": Out("results/{profile}/preview/{domain}.png")},
          log="logs/results/{profile}/preview/{domain}.png.log", params=("preview.samples",),
          wildcards=("domain",), dvc=(Group("preview", foreach="synth.domains", wildcard="domain"),)),
    Stage("pretrain_stage1", _cli("hcmoco.train.pretrain", "--data {input.sources} --out {output.model}"
                                  " --curves {output.curves}", stage="--stage 1 ",
                                  launch="{launch}"),
          module="hcmoco.train.pretrain", inputs={"sources": Helper("pretrain_sources"), "weights": Helper("init_weights")},
          outputs={"model": Out("models/{profile}/pretrain/stage1", directory=True),
                   "curves": Out("results/{profile}/pretrain/stage1/curves", directory=True)},
          log="logs/models/{profile}/pretrain/stage1.log", params=_PRETRAIN_SHARED + ("pretrain.stage1_steps",),
          threads="pretrain.threads", dvc=(Group("pretrain_stage1"),)),
    Stage("pretrain_stage2", _cli("hcmoco.train.pretrain", "--variant {wildcards.variant} --init {input.init}"
                                  " --data {input.sources} --out {output.model} --curves {output.curves}",
                                  stage="--stage 2 ", launch="{launch}"),
          module="hcmoco.train.pretrain",
          inputs={"sources": Helper("pretrain_sources"), "init": "models/{profile}/pretrain/stage1"},
          outputs={"model": Out("models/{profile}/pretrain/{variant}", directory=True),
                   "curves": Out("results/{profile}/pretrain/{variant}/curves", directory=True)},
          log="logs/models/{profile}/pretrain/{variant}.log",
          params=_PRETRAIN_SHARED + ("pretrain.stage1_steps", "pretrain.stage2_steps", "pretrain.variants.{variant}"),
          threads="pretrain.threads", wildcards=("variant",),
          dvc=(Group("pretrain_stage2", foreach="pretrain.variants", wildcard="variant"),)),
    Stage("retrieval", _cli("hcmoco.eval.retrieval", "--pretrained {params.pretrained} --data {input.data}"
                                                     " --out {output.json}"),
          module="hcmoco.eval.retrieval", inputs={"models": Helper("pretrained_models"), "data": Helper("paired_source")},
          outputs={"json": Out("results/{profile}/pretrain/retrieval.json")},
          log="logs/results/{profile}/pretrain/retrieval.json.log",
          params=("pretrain.seed", "pretrain.threads", "pretrain.backbone", "pretrain.embed_dim", "pretrain.variants"),
          paths={"pretrained": "models/{profile}/pretrain"}, threads="pretrain.threads",
          dvc=(Group("retrieval", deps={"models": "models/${profile}/pretrain"}),)),
    Stage("finetune", _cli("hcmoco.train.grid", _GRID_ARGS % "grid"), module="hcmoco.train.grid",
          inputs=_GRID_INPUTS, outputs={"grid": Out("results/{profile}/finetune/{task}/init~{init}", directory=True)},
          log="logs/results/{profile}/finetune/{task}/init~{init}.log", params=_FINETUNE, paths=_GRID_PATHS,
          threads="finetune.threads", wildcards=("task", "init"), dvc=_grid_groups("finetune", "finetune.inits")),
    Stage("frozen", _cli("hcmoco.train.frozen", _GRID_ARGS % "runs"), module="hcmoco.train.frozen",
          inputs=_GRID_INPUTS, outputs={"runs": Out("results/{profile}/frozen/{task}/init~{init}", directory=True)},
          log="logs/results/{profile}/frozen/{task}/init~{init}.log", params=_FROZEN, paths=_GRID_PATHS,
          threads="finetune.threads", wildcards=("task", "init"), dvc=_grid_groups("frozen", "frozen.inits")),
    Stage("versatility", _cli("hcmoco.train.versatility", "--experiment {wildcards.experiment}"
                              " --pretrained {params.pretrained} --data {input.data} --splits {input.splits}"
                              " --out {output.runs}"),
          module="hcmoco.train.versatility",
          inputs={"models": Helper("versatility_models"), "data": Helper("versatility_data"),
                  "splits": f"data/{{profile}}/splits/{VERSATILITY_TASK}"},
          outputs={"runs": Out("results/{profile}/versatility/{experiment}", directory=True)},
          log="logs/results/{profile}/versatility/{experiment}.log",
          params=("versatility.inits", "versatility.fraction", "versatility.seeds", "versatility.steps",
                  "versatility.batch_size", "versatility.lr", "versatility.eval_every", "finetune.device",
                  "finetune.threads", "finetune.miou", "finetune.weight_decay", "finetune.lr_min",
                  f"finetune.tasks.{VERSATILITY_TASK}", "pretrain.backbone", "pretrain.embed_dim"),
          paths={"pretrained": "models/{profile}/pretrain"}, threads="finetune.threads", wildcards=("experiment",),
          dvc=(Group("versatility", foreach=VERSATILITY_EXPERIMENTS, wildcard="experiment",
                     deps={"models": "models/${profile}/pretrain"}),)),
    Stage("aggregate", _cli("hcmoco.results.aggregate", "--results {params.results} --tables {output.tables}"
                            " --figures {output.figures} --metrics {output.metrics} --plots {output.plots}"),
          module="hcmoco.results.aggregate",
          inputs={"finetuned": Helper("finetuned"), "frozen": Helper("frozen_runs"),
                  "versatility": Helper("versatility_runs"), "retrieval": "results/{profile}/pretrain/retrieval.json",
                  "curves": Helper("curves"), "data": Helper("task_domains")},  # the qualitative sheets
          outputs={"tables": Out("results/{profile}/tables", directory=True),
                   "figures": Out("results/{profile}/figures", directory=True),
                   "metrics": Out("results/{profile}/metrics.json", metric=True),
                   "plots": Out("results/{profile}/plots", directory=True)},
          log="logs/results/{profile}/tables.log", params=("splits.tasks",), paths={"results": "results/{profile}"},
          dvc=(Group("aggregate", deps={"finetuned": "results/${profile}/finetune", "frozen": "results/${profile}/frozen",
                                        "versatility": "results/${profile}/versatility",
                                        "retrieval": None, "curves": "results/${profile}/pretrain",
                                        "data": "data/${profile}/synth"}),)),
    # Snakemake-only: DVC writes no benchmark files
    Stage("jobs", "", module=None, inputs={"benchmarks": Helper("benchmarks")},
          outputs={"csv": Out("results/{profile}/jobs.csv"), "md": Out("results/{profile}/jobs.md")},
          log="logs/results/{profile}/jobs.log"),
)
BY_NAME = {stage.name: stage for stage in STAGES}


def plot_definitions(params: dict) -> list[tuple[str, dict]]:
    """The main metric per label fraction and init, one plot per task of the params (DVC's `plots`)."""
    return [(f"results/{{profile}}/plots/{task}.csv",
             {"x": "fraction_percent", "y": ["scratch", "sample", "hcmoco"], "x_label": "label fraction (%)",
              "y_label": "main metric (%)"}) for task in params["splits"]["tasks"]]


# --- code dependencies --------------------------------------------------------------------------

def module_files(module: str, root: str | Path = ".") -> list[str]:
    """The package files (relative to `root`, the repository) `module` imports, directly or not,
    itself and its parent packages included: hcmoco.codegraph's static import closure, read from
    the sources under `root`."""
    package_dir = Path(root).resolve() / PACKAGE
    if module_file(module, package_dir) is None:
        raise ValueError(f"{module}: no such module under {package_dir}")
    return sorted(module_file(name, package_dir).relative_to(package_dir.parent).as_posix()
                  for name in closure(module, package_dir))


# --- helpers: Snakemake's values of inputs and params that are not one template ----------------

def _domain(params: dict, profile: str, domain: str) -> str:
    return str(domain_dir(params, domain, f"data/{profile}"))


def init_models(profile: str, inits) -> list[str]:
    """Pre-training outputs (or the converted ImageNet weights) the inits name."""
    return [f"models/{profile}/pretrain/{init}" for init in inits]


def finetune_inits(params: dict) -> list[str]:
    return ["scratch", *params["finetune"]["inits"]]


def frozen_inits(params: dict) -> list[str]:
    return ["scratch", *params["frozen"]["inits"]]


def _helpers(params: dict, profile: str) -> dict[str, Callable[[], Any]]:
    real = params["real"]["datasets"]
    tasks = params["splits"]["tasks"]
    sources = params["pretrain"]["sources"]
    variants = list(params["pretrain"]["variants"])

    def task_data(wildcards):
        return _domain(params, profile, tasks[wildcards.task]["domain"])

    def init_model(wildcards):
        return [] if wildcards.init == "scratch" else init_models(profile, [wildcards.init])

    def raw_manifest(wildcards):
        return f"data/raw/{real[wildcards.dataset]['raw']}/MANIFEST.json"

    def also_manifests(wildcards):
        return [f"data/raw/{raw}/MANIFEST.json" for raw in real[wildcards.dataset].get("also", [])]

    def raw_dir(wildcards):
        return f"data/raw/{real[wildcards.dataset]['raw']}"

    def preprocessor(wildcards):
        return real[wildcards.dataset]["preprocessor"]

    def preprocessor_options(wildcards):
        """`--name value` per real.datasets.<name>.options entry (a true flag: `--name`)."""
        opts = real[wildcards.dataset].get("options") or {}
        return " ".join(f"--{k}" if v is True else f"--{k} {v}" for k, v in sorted(opts.items()) if v is not False)

    def real_resolution(wildcards):
        return real[wildcards.dataset].get("resolution", params["real"]["resolution"])

    def expand(stage: str, output: str, **values) -> list[str]:
        combos = [{}]
        for name, options in values.items():
            combos = [{**c, name: v} for c in combos for v in options]
        return [path(BY_NAME[stage].outputs[output].path, profile, c) for c in combos]

    def benchmarks(wildcards):
        return [path(BY_NAME[name].benchmark, profile, wc) for name, wc in planned_jobs(params)]

    return {
        "task_data": lambda: task_data, "init_model": lambda: init_model,
        "raw_manifest": lambda: raw_manifest, "also_manifests": lambda: also_manifests, "raw_dir": lambda: raw_dir,
        "preprocessor": lambda: preprocessor, "preprocessor_options": lambda: preprocessor_options,
        "real_resolution": lambda: real_resolution, "benchmarks": lambda: benchmarks,
        "pretrain_sources": lambda: [_domain(params, profile, sources[k]) for k in ("paired", "keypoints")],
        "paired_source": lambda: _domain(params, profile, sources["paired"]),
        "init_weights": lambda: params["pretrain"]["init_weights"] or [],
        "pretrained_models": lambda: expand("pretrain_stage1", "model") + expand("pretrain_stage2", "model",
                                                                                variant=variants),
        "versatility_models": lambda: init_models(profile, params["versatility"]["inits"]),
        "versatility_data": lambda: _domain(params, profile, tasks[VERSATILITY_TASK]["domain"]),
        "finetuned": lambda: expand("finetune", "grid", task=list(tasks), init=finetune_inits(params)),
        "frozen_runs": lambda: expand("frozen", "runs", task=frozen_tasks(params), init=frozen_inits(params)),
        "versatility_runs": lambda: expand("versatility", "runs", experiment=VERSATILITY_EXPERIMENTS),
        "curves": lambda: expand("pretrain_stage1", "curves") + expand("pretrain_stage2", "curves", variant=variants),
        "task_domains": lambda: [_domain(params, profile, spec["domain"]) for spec in tasks.values()],
    }


def path(template: str, profile: str, wildcards: dict[str, str] | None = None) -> str:
    """A template with the profile and (when given) the wildcards filled in."""
    values = {"profile": profile, **(wildcards or {})}
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def planned_jobs(params: dict) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a profile's DAG runs, as the `all` rule requests them (the
    real-data rules for the domains the profile reads, imagenet_init where an init names it)."""
    tasks = params["splits"]["tasks"]
    real = params["real"]["datasets"]
    used = [*params["pretrain"]["sources"].values(), *(spec["domain"] for spec in tasks.values())]
    datasets = [d for d in real if d in used]
    raws = sorted({raw for d in datasets for raw in [real[d]["raw"], *real[d].get("also", [])]})
    inits = {*params["finetune"]["inits"], *params["frozen"]["inits"], *params["versatility"]["inits"]}
    jobs = [("fetch", {"raw": raw}) for raw in raws]
    jobs += [("prepare", {"dataset": d}) for d in datasets]
    jobs += [("imagenet_init", {})] if "imagenet" in inits else []
    jobs += [(rule, {"domain": d}) for rule in ("generate", "preview") for d in params["synth"]["domains"]]
    jobs += [("split", {"task": t}) for t in tasks]
    jobs += [("pretrain_stage1", {})] + [("pretrain_stage2", {"variant": v}) for v in params["pretrain"]["variants"]]
    jobs += [("retrieval", {})]
    jobs += [("finetune", {"task": t, "init": i}) for t in tasks for i in finetune_inits(params)]
    jobs += [("frozen", {"task": t, "init": i}) for t in frozen_tasks(params) for i in frozen_inits(params)]
    jobs += [("versatility", {"experiment": e}) for e in VERSATILITY_EXPERIMENTS]
    return jobs + [("aggregate", {})]


# --- Snakemake ------------------------------------------------------------------------------------

@dataclass
class SnakemakeRule:
    """What a rule's directives take (`input: **rule.input`, `shell: rule.shell`, ...)."""
    input: dict[str, Any]
    output: dict[str, Any]
    log: str
    benchmark: str
    params: dict[str, Any]
    threads: int
    shell: str


def _digest(params: dict, stage: Stage):
    def values(wildcards):
        return section_digest(params, *stage.keys(dict(wildcards.items())))
    return values


def _code(stage: Stage, params: dict, root: str):
    if stage.module is None:
        return []
    if "{" not in stage.module:
        return module_files(stage.module, root)
    real = params["real"]["datasets"]

    def code(wildcards):  # the module is chosen per job (prepare: the dataset's preprocessor)
        return module_files(stage.module.format(preprocessor=real[wildcards.dataset]["preprocessor"]), root)
    return code


def _path_param(value: str):
    """A path param as a function: Snakemake's lint asks not to hard-code an input's prefix."""
    def param(wildcards):
        return path(value, "", dict(wildcards.items()))
    return param


def snakemake_rules(params: dict, profile: str, root: str = ".",
                    directory: Callable[[str], Any] = str) -> dict[str, SnakemakeRule]:
    """Every stage's directives for one profile (workflow/rules/common.smk: `RULES`); `directory`
    is Snakemake's flag for folder outputs."""
    helpers = _helpers(params, profile)

    def value(spec: str | Helper) -> Any:
        return helpers[spec.name]() if isinstance(spec, Helper) else path(spec, profile)

    rules = {}
    for stage in STAGES:
        inputs = {name: value(spec) for name, spec in stage.inputs.items()}
        if stage.module is not None:
            inputs["code"] = _code(stage, params, root)
        outputs = {}
        for name, out in stage.outputs.items():
            outputs[name] = directory(path(out.path, profile)) if out.directory else path(out.path, profile)
        run_params: dict[str, Any] = {}
        if "{params.file}" in stage.cmd:
            run_params.update(file=PARAMS_FILE, profile=profile)
        for name, spec in stage.paths.items():
            run_params[name] = helpers[spec.name]() if isinstance(spec, Helper) else _path_param(path(spec, profile))
        if stage.params:
            run_params["values"] = _digest(params, stage)
        threads = stage.threads if isinstance(stage.threads, int) else _get(params, stage.threads)
        rules[stage.name] = SnakemakeRule(inputs, outputs, path(stage.log, profile), path(stage.benchmark, profile),
                                          run_params, int(threads), stage.cmd.replace("{launch}", launcher(params)))
    return rules


def _get(params: dict, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node


def read_benchmark(file: str | Path) -> dict[str, float]:
    """A Snakemake benchmark file's last row (one row per run of `repeat()`): s, max_rss (MB),
    cpu_time (s), ...; a value Snakemake could not measure (NA) reads as NaN."""
    rows = list(csv.DictReader(io.StringIO(Path(file).read_text()), delimiter="\t"))
    if not rows or any(rows[-1].get(k) is None for k in ("s", "max_rss", "cpu_time")):
        raise ValueError(f"{file}: no benchmark row (not a Snakemake benchmark file)")
    return {k: float(v) if v not in ("", "-", "NA") else float("nan")
            for k, v in rows[-1].items() if k in ("s", "max_rss", "cpu_time")}


def jobs_table(params: dict, profile: str, csv_out: str | Path, md_out: str | Path,
               log: str | Path | None = None) -> int:
    """Gather every job's benchmark file into one CSV and one Markdown table: rule, wildcards,
    runtime, peak memory and CPU time (a line for `log`, appended)."""
    from hcmoco.atomic import atomic_write_text

    rows = []
    for rule, wildcards in planned_jobs(params):
        bench = read_benchmark(path(BY_NAME[rule].benchmark, profile, wildcards))
        rows.append({"rule": rule, "wildcards": ",".join(f"{k}={v}" for k, v in wildcards.items()),
                     "runtime_s": f"{bench['s']:.2f}", "max_rss_mb": f"{bench['max_rss']:.1f}",
                     "cpu_time_s": f"{bench['cpu_time']:.2f}"})
    fields = ["rule", "wildcards", "runtime_s", "max_rss_mb", "cpu_time_s"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_out, text.getvalue())
    total = sum(float(r["runtime_s"]) for r in rows)
    md = [f"Profile `{profile}`: {len(rows)} jobs, {total:.0f} s of runtime in all (Snakemake's benchmark files "
          "under benchmarks/; peak memory is the job's maximum resident set size).", "",
          "| rule | wildcards | runtime (s) | peak memory (MB) | CPU time (s) |", "|---|---|---|---|---|"]
    md += [f"| {r['rule']} | {r['wildcards'] or '-'} | {r['runtime_s']} | {r['max_rss_mb']} | {r['cpu_time_s']} |"
           for r in rows]
    atomic_write_text(md_out, "\n".join(md) + "\n")
    if log is not None:
        with open(log, "a") as handle:
            handle.write(f"{csv_out}: {len(rows)} jobs, {total:.0f} s\n")
    return len(rows)


# --- the root dvc.yaml ------------------------------------------------------------------------

def _dvc_wildcards(stage: Stage, group: Group) -> dict[str, str]:
    """How each wildcard of the rule reads inside the group's DVC stage."""
    values = dict(group.fixed)
    if group.matrix:
        values.update({w: f"${{item.{w}}}" for w in group.matrix})
    elif group.foreach is not None:
        values[group.wildcard] = "${item}" if isinstance(group.foreach, tuple) else "${key}"
    missing = [w for w in stage.wildcards if w not in values]
    if missing:
        raise ValueError(f"stage {stage.name}: DVC group {group.name} leaves wildcard {missing[0]} open")
    return values


def _dvc_path(template: str, values: dict[str, str]) -> str:
    return path(template, "${profile}", values)


def _dvc_inputs(stage: Stage, group: Group, values: dict[str, str], params: dict) -> dict[str, list[str]]:
    found = {}
    for name, spec in stage.inputs.items():
        if name in group.deps:
            template = group.deps[name]
            found[name] = [] if template is None else [template]
        elif isinstance(spec, Helper):
            found[name] = _dvc_helper(stage, spec, params)
        else:
            found[name] = [_dvc_path(spec, values)]
    return found


def _dvc_helper(stage: Stage, spec: Helper, params: dict) -> list[str]:
    """Helpers that read as DVC templates of the base params."""
    if spec.name == "pretrain_sources":
        return [f"data/${{profile}}/synth/${{pretrain.sources.{k}}}" for k in ("paired", "keypoints")]
    if spec.name == "paired_source":
        return ["data/${profile}/synth/${pretrain.sources.paired}"]
    if spec.name == "versatility_data":
        return [f"data/${{profile}}/synth/${{splits.tasks.{VERSATILITY_TASK}.domain}}"]
    if spec.name == "init_weights":  # optional: a dep only where the base params name weights
        weights = params["pretrain"]["init_weights"]
        return [weights] if weights else []
    raise ValueError(f"stage {stage.name}: input helper {spec.name} has no DVC form (set it in the DVC group's deps)")


def _dvc_cmd(stage: Stage, values: dict[str, str], inputs: dict[str, list[str]], params: dict) -> str:
    def fill(match: re.Match) -> str:
        kind, _, name = match.group(1).partition(".")
        if kind == "launch":  # the base params' launcher: DVC's templating has no conditional
            return launcher(params)
        if kind == "log":
            return _dvc_path(stage.log, values)
        if kind == "wildcards":
            return values[name]
        if kind == "input":
            return " ".join(inputs[name])
        if kind == "output":
            return _dvc_path(stage.outputs[name].path, values)
        if kind == "params":
            if name == "file":
                return PARAMS_FILE
            if name == "profile":
                return "${profile}"
            spec = stage.paths[name]
            if isinstance(spec, Helper):
                raise ValueError(f"stage {stage.name}: param {name} has no DVC form")
            return _dvc_path(spec, values)
        raise ValueError(f"stage {stage.name}: {{{match.group(1)}}}: no DVC form")
    return re.sub(r"\{([\w.]+)\}", fill, stage.cmd)


def sections(keys: Sequence[str]) -> list[str]:
    """The top-level sections of params keys, in order of appearance."""
    return list(dict.fromkeys(key.split(".")[0] for key in keys))


def _dvc_stage(stage: Stage, group: Group, params: dict, root: str) -> dict:
    values = _dvc_wildcards(stage, group)
    inputs = _dvc_inputs(stage, group, values, params)
    body: dict[str, Any] = {"cmd": _dvc_cmd(stage, values, inputs, params)}
    code = module_files(stage.module, root) if stage.module else []
    body["deps"] = code + [p for name in stage.inputs for p in inputs[name]]
    keys = [_dvc_path(key, values) for key in stage.params]
    body["params"] = [{PARAMS_FILE: keys}, {OVERLAY.format(profile="${profile}"): sections(stage.params)}]
    outs = [_dvc_path(o.path, values) for o in stage.outputs.values() if not o.metric]
    metrics = [_dvc_path(o.path, values) for o in stage.outputs.values() if o.metric]
    body["outs"] = outs
    if metrics:
        body["metrics"] = metrics
    if group.matrix:
        return {"matrix": {w: f"${{{key}}}" for w, key in group.matrix.items()}, **body}
    if group.foreach is not None:
        over = list(group.foreach) if isinstance(group.foreach, tuple) else f"${{{group.foreach}}}"
        return {"foreach": over, "do": body}
    return body


def dvc_document(params: dict, root: str = ".") -> dict:
    """The root dvc.yaml as data: one stage or group per Group of each rule, then the plots."""
    stages = {}
    for stage in STAGES:
        for group in stage.dvc:
            stages[group.name] = _dvc_stage(stage, group, params, root)
    plots = [{path(p, "${profile}"): dict(props)} for p, props in plot_definitions(params)]
    return {"vars": [PARAMS_FILE], "stages": stages, "plots": plots}


class _Dumper(yaml.SafeDumper):
    """No anchors or aliases: each stage reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = f"""\
# Generated from hcmoco/stages.py by `{WRITE_COMMAND}` (or `make dvc-yaml`); do not edit by
# hand: change the table there and run the command again (tests/workflow/test_parity.py fails when
# this file is stale). The same stages as the Snakefile, whose rules read the same table.
# Profile: `dvc exp run -S params/params.yaml:profile=smoke`, or edit `profile:` in params/params.yaml.
"""


def render_root(params: dict, root: str = ".") -> str:
    text = yaml.dump(dvc_document(params, root), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=110, allow_unicode=True)
    return HEADER + text


def _base_params(root: str | Path) -> dict:
    """The base params file as DVC's `vars` reads it (no profile overlay)."""
    file = Path(root) / PARAMS_FILE
    return yaml.safe_load(file.read_text()) or {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or check) the root dvc.yaml from the stage table.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", action="store_true", help="write dvc.yaml")
    what.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml differs from the table's")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        text = render_root(_base_params(args.root), args.root)
    except KeyError as err:
        print(f"error: {PARAMS_FILE}: {err.args[0]}: missing (the stage table reads it)", file=sys.stderr)
        return 2
    except (ValueError, OSError, yaml.YAMLError) as err:
        print(f"error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    target = Path(args.root) / ROOT_DVC
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"error: {target}: stale, not what hcmoco/stages.py gives; run `{WRITE_COMMAND}` "
                  "(or `make dvc-yaml`)", file=sys.stderr)
            return 1
        print(f"{target}: up to date")
        return 0
    from hcmoco.atomic import atomic_write_text
    atomic_write_text(target, text)
    print(f"{target}: {sum(len(s.dvc) for s in STAGES)} stages from hcmoco/stages.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
