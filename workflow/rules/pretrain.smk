# HCMoCo pre-training: stage 1 (sample-level) once, stage 2 per variant, one retrieval check of all.


rule pretrain_stage1:
    input:
        **RULES["pretrain_stage1"].input,
    output:
        **RULES["pretrain_stage1"].output,
    log:
        RULES["pretrain_stage1"].log,
    benchmark:
        RULES["pretrain_stage1"].benchmark
    params:
        **RULES["pretrain_stage1"].params,
    conda:
        "../envs/hcmoco.yaml"
    priority: 20  # data -> stage 1 -> stage 2 -> fine-tuning: first
    threads: RULES["pretrain_stage1"].threads
    resources:
        mem_mb=6000,
    shell:
        RULES["pretrain_stage1"].shell


rule pretrain_stage2:
    input:
        **RULES["pretrain_stage2"].input,
    output:
        **RULES["pretrain_stage2"].output,
    log:
        RULES["pretrain_stage2"].log,
    benchmark:
        RULES["pretrain_stage2"].benchmark
    params:
        **RULES["pretrain_stage2"].params,
    conda:
        "../envs/hcmoco.yaml"
    priority: 10  # scratch jobs fill the other core meanwhile
    threads: RULES["pretrain_stage2"].threads
    resources:
        mem_mb=6000,
    shell:
        RULES["pretrain_stage2"].shell


rule retrieval:
    input:
        **RULES["retrieval"].input,
    output:
        **RULES["retrieval"].output,
    log:
        RULES["retrieval"].log,
    benchmark:
        RULES["retrieval"].benchmark
    params:
        **RULES["retrieval"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["retrieval"].threads
    resources:
        mem_mb=2000,
    shell:
        RULES["retrieval"].shell
