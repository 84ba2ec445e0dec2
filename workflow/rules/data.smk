# SynthHuman rendering and per-domain preview sheets.


rule generate:
    input:
        **RULES["generate"].input,
    output:
        **RULES["generate"].output,
    log:
        RULES["generate"].log,
    benchmark:
        RULES["generate"].benchmark
    params:
        **RULES["generate"].params,
    conda:
        "../envs/hcmoco.yaml"
    priority: 30  # the pre-training sources lead the critical path
    threads: RULES["generate"].threads
    resources:
        mem_mb=4000,
    shell:
        RULES["generate"].shell


rule preview:
    input:
        **RULES["preview"].input,
    output:
        png=report(RULES["preview"].output["png"], caption="../report/preview.rst", category="Data"),
    log:
        RULES["preview"].log,
    benchmark:
        RULES["preview"].benchmark
    params:
        **RULES["preview"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["preview"].threads
    resources:
        mem_mb=1000,
    shell:
        RULES["preview"].shell
