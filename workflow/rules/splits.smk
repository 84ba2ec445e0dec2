# Label-fraction splits per downstream task: validation carve + nested stratified subsets.


rule split:
    input:
        **RULES["split"].input,
    output:
        **RULES["split"].output,
    log:
        RULES["split"].log,
    benchmark:
        RULES["split"].benchmark
    params:
        **RULES["split"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["split"].threads
    resources:
        mem_mb=1000,
    shell:
        RULES["split"].shell
