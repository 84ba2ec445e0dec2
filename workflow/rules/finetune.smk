# Downstream fine-tuning: one job per (task, init) runs every (fraction, seed) cell of the grid;
# the versatility experiments on the parsing task with RGB, depth and labels.


rule finetune:
    input:
        model=init_model,
        data=task_data,
        splits=rules.split.output.splits,
        code=CODE["finetune"],
    output:
        grid=directory(f"results/{PROFILE}/finetune/{{task}}/init~{{init}}"),
    log:
        f"logs/results/{PROFILE}/finetune/{{task}}/init~{{init}}.jsonl",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        model=init_model_arg,
        values=finetune_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    shell:
        "python -m hcmoco.train.grid --params {params.file} --profile {params.profile} --task {wildcards.task}"
        " --init {wildcards.init} --model {params.model} --data {input.data} --splits {input.splits}"
        " --out {output.grid}"


rule versatility:
    input:
        model=init_model,
        data=f"data/{PROFILE}/synth/{VERSATILITY_DOMAIN}",
        splits=f"data/{PROFILE}/splits/{VERSATILITY_TASK}",
        code=CODE["versatility"],
    output:
        runs=directory(f"results/{PROFILE}/versatility/{{experiment}}/init~{{init}}"),
    log:
        f"logs/results/{PROFILE}/versatility/{{experiment}}/init~{{init}}.jsonl",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        model=init_model_arg,
        values=versatility_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    shell:
        "python -m hcmoco.train.versatility --params {params.file} --profile {params.profile}"
        " --experiment {wildcards.experiment} --init {wildcards.init} --model {params.model}"
        " --data {input.data} --splits {input.splits} --out {output.runs}"
