# Every run of the profile -> the paper's tables, figures, DVC metrics and plots.


rule aggregate:
    input:
        finetuned=expand(rules.finetune.output.grid, task=TASKS, init=FINETUNE_INITS),
        frozen=expand(rules.frozen.output.runs, task=FROZEN_TASKS, init=FROZEN_INITS),
        versatility=expand(rules.versatility.output.runs, experiment=VERSATILITY_EXPERIMENTS),
        retrieval=rules.retrieval.output.json,
        curves=[rules.pretrain_stage1.output.curves] + expand(rules.pretrain_stage2.output.curves, variant=VARIANTS),
        data=[domain_dir(PARAMS["splits"]["tasks"][t]["domain"]) for t in TASKS],  # the qualitative sheets
        code=CODE["aggregate"],
    output:
        tables=report(directory(f"results/{PROFILE}/tables"), patterns=["{name}.csv"],
                      caption="../report/tables.rst", category="Tables"),
        figures=report(directory(f"results/{PROFILE}/figures"), patterns=["{name}.png"],
                       caption="../report/figures.rst", category="Figures"),
        metrics=f"results/{PROFILE}/metrics.json",
        plots=directory(f"results/{PROFILE}/plots"),
    log:
        f"logs/results/{PROFILE}/tables.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        results=results_root,
        values=aggregate_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m hcmoco.results.aggregate --params {params.file} --profile {params.profile} --log {log}"
        " --results {params.results} --tables {output.tables} --figures {output.figures}"
        " --metrics {output.metrics} --plots {output.plots}"
