# HCMoCo pre-training: stage 1 (sample-level) once, stage 2 per variant, one retrieval check of all.


rule pretrain_stage1:
    input:
        sources=[domain_dir(d) for d in PRETRAIN_SOURCES],
        weights=PARAMS["pretrain"]["init_weights"] or [],
        code=CODE["pretrain"],
    output:
        model=directory(f"models/{PROFILE}/pretrain/stage1"),
        curves=directory(f"results/{PROFILE}/pretrain/stage1/curves"),
    log:
        f"logs/models/{PROFILE}/pretrain/stage1.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        values=pretrain_values,
    conda:
        "../envs/hcmoco.yaml"
    priority: 20  # data -> stage 1 -> stage 2 -> fine-tuning: first
    threads: PARAMS["pretrain"]["threads"]
    resources:
        mem_mb=6000,
    shell:
        "python -m hcmoco.train.pretrain --params {params.file} --profile {params.profile} --stage 1 --log {log}"
        " --data {input.sources} --out {output.model} --curves {output.curves}"


rule pretrain_stage2:
    input:
        sources=[domain_dir(d) for d in PRETRAIN_SOURCES],
        init=rules.pretrain_stage1.output.model,
        code=CODE["pretrain"],
    output:
        model=directory(f"models/{PROFILE}/pretrain/{{variant}}"),
        curves=directory(f"results/{PROFILE}/pretrain/{{variant}}/curves"),
    log:
        f"logs/models/{PROFILE}/pretrain/{{variant}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        values=pretrain_values,
    conda:
        "../envs/hcmoco.yaml"
    priority: 10  # scratch jobs fill the other core meanwhile
    threads: PARAMS["pretrain"]["threads"]
    resources:
        mem_mb=6000,
    shell:
        "python -m hcmoco.train.pretrain --params {params.file} --profile {params.profile} --stage 2 --log {log}"
        " --variant {wildcards.variant} --init {input.init} --data {input.sources}"
        " --out {output.model} --curves {output.curves}"


rule retrieval:
    input:
        models=[rules.pretrain_stage1.output.model] + expand(rules.pretrain_stage2.output.model, variant=VARIANTS),
        data=domain_dir(PRETRAIN_SOURCES[0]),
        code=CODE["retrieval"],
    output:
        json=f"results/{PROFILE}/pretrain/retrieval.json",
    log:
        f"logs/results/{PROFILE}/pretrain/retrieval.json.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        pretrained=pretrained_root,
        values=retrieval_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: PARAMS["pretrain"]["threads"]
    resources:
        mem_mb=2000,
    shell:
        "python -m hcmoco.eval.retrieval --params {params.file} --profile {params.profile} --log {log}"
        " --pretrained {params.pretrained} --data {input.data} --out {output.json}"
