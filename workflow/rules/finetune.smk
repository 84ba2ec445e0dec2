# Downstream fine-tuning: one job per (task, init) runs every fraction x seed cell of its grid
# (scratch jobs need no pre-training and run beside it); the same per (task, init) for the
# frozen-feature protocol; one job per versatility experiment runs every init x seed.


rule finetune:
    input:
        **RULES["finetune"].input,
    output:
        **RULES["finetune"].output,
    log:
        RULES["finetune"].log,
    benchmark:
        RULES["finetune"].benchmark
    params:
        **RULES["finetune"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["finetune"].threads
    resources:
        mem_mb=3000,
    shell:
        RULES["finetune"].shell


rule frozen:
    input:
        **RULES["frozen"].input,
    output:
        **RULES["frozen"].output,
    log:
        RULES["frozen"].log,
    benchmark:
        RULES["frozen"].benchmark
    params:
        **RULES["frozen"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["frozen"].threads
    resources:
        mem_mb=3000,
    shell:
        RULES["frozen"].shell


rule versatility:
    input:
        **RULES["versatility"].input,
    output:
        **RULES["versatility"].output,
    log:
        RULES["versatility"].log,
    benchmark:
        RULES["versatility"].benchmark
    params:
        **RULES["versatility"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["versatility"].threads
    resources:
        mem_mb=3000,
    shell:
        RULES["versatility"].shell
