# Helpers only: parameters, input functions, wildcard constraints. No rules here.
from pathlib import Path

from hcmoco.config import ParamsError, frozen_tasks, load_params, section_digest
from hcmoco.config import domain_dir as profile_domain_dir


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
FINETUNE_INITS = ["scratch", *PARAMS["finetune"]["inits"]]
# the frozen-feature protocol runs on the tasks whose data are person crops (hcmoco.config.frozen_tasks)
FROZEN_TASKS = frozen_tasks(PARAMS)
FROZEN_INITS = ["scratch", *PARAMS["frozen"]["inits"]]
# paired source + keypoint-only source of pre-training (METHOD.md section 1)
PRETRAIN_SOURCES = [PARAMS["pretrain"]["sources"]["paired"], PARAMS["pretrain"]["sources"]["keypoints"]]
REAL = PARAMS["real"]["datasets"]
RAW = sorted({raw for spec in REAL.values() for raw in [spec["raw"], *spec.get("also", [])]})
VERSATILITY_EXPERIMENTS = ["crossmodal", "missing"]
VERSATILITY_TASK = "depth_parsing"
VERSATILITY_DOMAIN = PARAMS["splits"]["tasks"][VERSATILITY_TASK]["domain"]



def _py(*dirs):
    return sorted(str(p) for d in dirs for p in Path(d).glob("*.py"))


# The package code each command runs: inputs here, deps in dvc.yaml (files or their folders;
# tests/workflow/test_parity.py keeps the two equal).
TRAIN_CODE = ["hcmoco/processed/keypoints.py", "hcmoco/processed/shards.py", "hcmoco/processed/transforms.py",
              "hcmoco/train/curves.py", "hcmoco/train/pretrain.py", "hcmoco/processed/pretrain_data.py",
              "hcmoco/train/resume.py", "hcmoco/train/runtime.py"] + _py("hcmoco/models", "hcmoco/losses")
CODE = {
    "generate": ["hcmoco/processed/shards.py", "hcmoco/processed/densepose_coco.py"]
    + sorted(str(p) for p in Path("hcmoco/synth").glob("*.py")),
    "split": ["hcmoco/processed/splits.py", "hcmoco/processed/shards.py"],
    "preview": ["hcmoco/processed/preview.py", "hcmoco/processed/shards.py"],
    "pretrain": TRAIN_CODE,
    "retrieval": TRAIN_CODE + ["hcmoco/eval/retrieval.py"],
}
# fine-tuning reads the backbones, the task heads, metrics and the split files
TASK_CODE = ["hcmoco/processed/shards.py", "hcmoco/processed/splits.py", "hcmoco/processed/transforms.py",
             "hcmoco/train/curves.py", "hcmoco/train/finetune.py", "hcmoco/train/resume.py",
             "hcmoco/train/runtime.py"] + _py("hcmoco/models", "hcmoco/tasks", "hcmoco/eval")
CODE["finetune"] = TASK_CODE + ["hcmoco/train/grid.py", "hcmoco/train/task_data.py", "hcmoco/train/task_eval.py"]
CODE["frozen"] = CODE["finetune"] + ["hcmoco/train/features.py", "hcmoco/train/frozen.py", "hcmoco/train/probe.py"]
CODE["versatility"] = sorted(set(TASK_CODE + TRAIN_CODE + ["hcmoco/train/versatility.py"]))
CODE["aggregate"] = ["hcmoco/atomic.py", "hcmoco/config.py", "hcmoco/processed/preview.py", "hcmoco/processed/shards.py"] \
    + _py("hcmoco/results")
CODE["prepare"] = ["hcmoco/processed/shards.py"] + _py("hcmoco/prepare")


wildcard_constraints:
    domain="|".join(DOMAINS),
    dataset="|".join(REAL),
    raw="|".join(RAW),
    task="|".join(TASKS),
    variant="|".join(VARIANTS),
    init="|".join(dict.fromkeys(FINETUNE_INITS + FROZEN_INITS)),
    experiment="|".join(VERSATILITY_EXPERIMENTS),


def synth_values(wildcards):
    """The parameters one domain's data depends on (a change re-renders that domain)."""
    return section_digest(PARAMS, "synth.seed", "synth.resolution", "synth.shard_size",
                          "synth.densepose_points_per_part", f"synth.domains.{wildcards.domain}")


def split_values(wildcards):
    return section_digest(PARAMS, "splits.seed", "splits.val_fraction", "splits.fractions",
                          "splits.seeds", f"splits.tasks.{wildcards.task}")


PRETRAIN_SHARED = ["init_weights", "seed", "device", "precision", "threads", "backbone", "sample_contrast", "optimizer", "embed_dim", "tau", "batch_size", "lr", "lr_min",
                   "momentum", "weight_decay", "negatives", "bank_momentum", "dense_cells", "checkpoint_every"]


def pretrain_values(wildcards):
    """Stage 1 reads the shared keys; stage 2 also its own steps and variant weights."""
    keys = [f"pretrain.{k}" for k in PRETRAIN_SHARED] + ["pretrain.stage1_steps"]
    if "variant" in wildcards.keys():
        keys += ["pretrain.stage2_steps", f"pretrain.variants.{wildcards.variant}"]
    return section_digest(PARAMS, *keys)


def retrieval_values(wildcards):
    return section_digest(PARAMS, "pretrain.seed", "pretrain.threads", "pretrain.backbone", "pretrain.embed_dim", "pretrain.variants")


def preview_values(wildcards):
    return section_digest(PARAMS, "preview.samples")


def task_data(wildcards):
    """The processed domain directory a task's splits are drawn from."""
    return domain_dir(PARAMS["splits"]["tasks"][wildcards.task]["domain"])


def domain_dir(domain):
    """Processed data of a domain: rendered (synth.domains) or preprocessed (real.datasets)."""
    return str(profile_domain_dir(PARAMS, domain, f"data/{PROFILE}"))


def init_models(inits):
    """Pre-training outputs (or the converted ImageNet weights) the inits name."""
    return [f"models/{PROFILE}/pretrain/{init}" for init in inits]


def init_model(wildcards):
    """The pre-training output (or converted ImageNet weights) a fine-tuning init reads; none for scratch."""
    return [] if wildcards.init == "scratch" else init_models([wildcards.init])


def data_root(wildcards, input):
    """The profile's data folder, above the task's domain (data/<profile>/{synth,real}/<domain>)."""
    return str(Path(input.data).parent.parent)


def pretrained_root(wildcards):
    """The folder of the pre-training outputs the fine-tuning inits name."""
    return f"models/{PROFILE}/pretrain"


FINETUNE_SHARED = ["inits", "grids", "fractions", "seeds", "device", "precision", "threads", "optimizer", "lr", "lr_min", "momentum",
                   "weight_decay", "batch_size", "eval_batch_size", "epochs", "min_steps", "max_steps",
                   "eval_every", "checkpoint_every", "freeze_backbone", "miou", "densepose_box_ignore"]


def finetune_values(wildcards):
    """A grid job reads the shared fine-tuning keys and its task's head keys (the init's own
    cells come from finetune.inits and finetune.grids, both shared)."""
    keys = [f"finetune.{k}" for k in FINETUNE_SHARED] + [f"finetune.tasks.{wildcards.task}", "pretrain.backbone",
                                                          f"splits.tasks.{wildcards.task}"]
    return section_digest(PARAMS, *keys)


FROZEN_KEYS = ["inits", "fractions", "seeds", "steps", "batch_size", "lr", "eval_every"]


def frozen_values(wildcards):
    """A frozen-feature job reads the frozen keys, the finetune keys it shares (threads, device,
    metric conventions: hcmoco.train.frozen.FINETUNE_KEYS) and its task's head and loss keys."""
    keys = ([f"frozen.{k}" for k in FROZEN_KEYS] + ["finetune.threads", "finetune.device", "finetune.miou",
            "finetune.densepose_box_ignore", f"finetune.tasks.{wildcards.task}", "pretrain.backbone",
            f"splits.tasks.{wildcards.task}"])
    return section_digest(PARAMS, *keys)


def versatility_values(wildcards):
    return section_digest(PARAMS, "versatility.inits", "versatility.fraction", "versatility.seeds",
                          "versatility.steps", "versatility.batch_size", "versatility.lr",
                          "versatility.eval_every", "finetune.device", "finetune.threads", "finetune.miou", "finetune.weight_decay", "finetune.lr_min",
                          f"finetune.tasks.{VERSATILITY_TASK}", "pretrain.backbone", "pretrain.embed_dim")


def aggregate_values(wildcards):
    """The tables read the task -> dataset mapping (reference numbers apply per dataset)."""
    return section_digest(PARAMS, "splits.tasks")


def results_root(wildcards, output):
    """The profile's results folder: the one holding the metrics file."""
    return str(Path(output.metrics).parent)


def raw_manifest(wildcards):
    return f"data/raw/{REAL[wildcards.dataset]['raw']}/MANIFEST.json"


def also_manifests(wildcards):
    """Manifests of the other raw datasets a preprocessor reads (`also`)."""
    return [f"data/raw/{raw}/MANIFEST.json" for raw in REAL[wildcards.dataset].get("also", [])]


def raw_dir(wildcards, input):
    return str(Path(input.manifest).parent)


def fetched_dir(wildcards, output):
    return str(Path(output.manifest).parent)


def preprocessor(wildcards):
    return REAL[wildcards.dataset]["preprocessor"]


def preprocessor_options(wildcards):
    """`--name value` per real.datasets.<name>.options entry (a true flag: `--name`)."""
    opts = REAL[wildcards.dataset].get("options") or {}
    return " ".join(f"--{k}" if v is True else f"--{k} {v}" for k, v in sorted(opts.items()) if v is not False)


def real_resolution(wildcards):
    """real.datasets.<name>.resolution, else real.resolution."""
    return REAL[wildcards.dataset].get("resolution", PARAMS["real"]["resolution"])


def real_values(wildcards):
    return section_digest(PARAMS, "real.resolution", f"real.datasets.{wildcards.dataset}")
