# Downstream fine-tuning: one job per (task, init) runs every fraction x seed cell of its grid
# (scratch jobs need no pre-training and run beside it); the same per (task, init) for the
# frozen-feature protocol; one job per versatility experiment runs every init x seed.


rule finetune:
    input:
        models=init_model,
        data=task_data,
        splits=rules.split.output.splits,
        code=CODE["finetune"],
    output:
        grid=directory(f"results/{PROFILE}/finetune/{{task}}/init~{{init}}"),
    log:
        f"logs/results/{PROFILE}/finetune/{{task}}/init~{{init}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        pretrained=pretrained_root,
        data_root=data_root,
        values=finetune_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: PARAMS["finetune"]["threads"]
    resources:
        mem_mb=3000,
    shell:
        "python -m hcmoco.train.grid --params {params.file} --profile {params.profile} --log {log} --task {wildcards.task}"
        " --init {wildcards.init} --pretrained {params.pretrained} --data-root {params.data_root}"
        " --splits {input.splits} --out {output.grid}"


rule frozen:
    input:
        models=init_model,
        data=task_data,
        splits=rules.split.output.splits,
        code=CODE["frozen"],
    output:
        runs=directory(f"results/{PROFILE}/frozen/{{task}}/init~{{init}}"),
    log:
        f"logs/results/{PROFILE}/frozen/{{task}}/init~{{init}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        pretrained=pretrained_root,
        data_root=data_root,
        values=frozen_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: PARAMS["finetune"]["threads"]
    resources:
        mem_mb=3000,
    shell:
        "python -m hcmoco.train.frozen --params {params.file} --profile {params.profile} --log {log} --task {wildcards.task}"
        " --init {wildcards.init} --pretrained {params.pretrained} --data-root {params.data_root}"
        " --splits {input.splits} --out {output.runs}"


rule versatility:
    input:
        models=init_models(PARAMS["versatility"]["inits"]),
        data=domain_dir(VERSATILITY_DOMAIN),
        splits=f"data/{PROFILE}/splits/{VERSATILITY_TASK}",
        code=CODE["versatility"],
    output:
        runs=directory(f"results/{PROFILE}/versatility/{{experiment}}"),
    log:
        f"logs/results/{PROFILE}/versatility/{{experiment}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        pretrained=pretrained_root,
        values=versatility_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: PARAMS["finetune"]["threads"]
    resources:
        mem_mb=3000,
    shell:
        "python -m hcmoco.train.versatility --params {params.file} --profile {params.profile} --log {log}"
        " --experiment {wildcards.experiment} --pretrained {params.pretrained}"
        " --data {input.data} --splits {input.splits} --out {output.runs}"
