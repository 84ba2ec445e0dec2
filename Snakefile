# hcmoco: HCMoCo multi-modal pre-training and data-efficient fine-tuning, as one DAG.
#   snakemake --cores all                          default profile
#   snakemake --cores all --config profile=smoke   any profile in params/profiles/
from snakemake.utils import min_version

min_version("9.0")


configfile: "params/params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/real.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        data=expand(rules.generate.output.data, domain=DOMAINS),
        previews=expand(rules.preview.output.png, domain=DOMAINS),
        splits=expand(rules.split.output.splits, task=TASKS),
        pretrained=expand(rules.pretrain_stage2.output.model, variant=VARIANTS),
        retrieval=rules.retrieval.output.json,
        finetuned=expand(rules.finetune.output.grid, task=TASKS, init=FINETUNE_INITS),
        frozen=expand(rules.frozen.output.runs, task=FROZEN_TASKS, init=FROZEN_INITS),
        versatility=expand(rules.versatility.output.runs, experiment=VERSATILITY_EXPERIMENTS),
        tables=rules.aggregate.output.tables,
        jobs=rules.jobs.output.csv,  # runtime and peak memory of every job (Snakemake-only)
    default_target: True


onerror:
    # a SLURM job killed for its memory or time limit: name the resource to raise (hcmoco/cluster.py)
    from hcmoco.cluster import report_limits

    report_limits(log)
