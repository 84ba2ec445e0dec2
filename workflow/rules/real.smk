# Real datasets (profile `paper`): fetch public data / check licensed layouts, preprocess to the
# processed format; ImageNet HRNetV2-W18 weights converted to backbone files (init `imagenet`).


rule fetch:
    input:
        **RULES["fetch"].input,
    output:
        **RULES["fetch"].output,
    log:
        RULES["fetch"].log,
    benchmark:
        RULES["fetch"].benchmark
    params:
        **RULES["fetch"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["fetch"].threads
    resources:
        mem_mb=2000,
    shell:
        RULES["fetch"].shell


rule prepare:
    input:
        **RULES["prepare"].input,
    output:
        **RULES["prepare"].output,
    log:
        RULES["prepare"].log,
    benchmark:
        RULES["prepare"].benchmark
    params:
        **RULES["prepare"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["prepare"].threads
    resources:
        mem_mb=16000,
    shell:
        RULES["prepare"].shell


rule imagenet_init:
    input:
        **RULES["imagenet_init"].input,
    output:
        **RULES["imagenet_init"].output,
    log:
        RULES["imagenet_init"].log,
    benchmark:
        RULES["imagenet_init"].benchmark
    params:
        **RULES["imagenet_init"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["imagenet_init"].threads
    resources:
        mem_mb=2000,
    shell:
        RULES["imagenet_init"].shell
