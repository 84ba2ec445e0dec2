# SynthHuman rendering and per-domain preview sheets.


rule generate:
    input:
        code=CODE["generate"],
    output:
        data=directory(f"data/{PROFILE}/synth/{{domain}}"),
    log:
        f"logs/data/{PROFILE}/synth/{{domain}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        values=synth_values,
    conda:
        "../envs/hcmoco.yaml"
    priority: 30  # the pre-training sources lead the critical path
    threads: 2
    resources:
        mem_mb=4000,
    shell:
        "python -m hcmoco.synth.generate --params {params.file} --profile {params.profile} --log {log}"
        " --domain {wildcards.domain} --out {output.data}"


rule preview:
    input:
        data=rules.generate.output.data,
        code=CODE["preview"],
    output:
        png=report(f"results/{PROFILE}/preview/{{domain}}.png", caption="../report/preview.rst",
                   category="Data"),
    log:
        f"logs/results/{PROFILE}/preview/{{domain}}.png.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        values=preview_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m hcmoco.processed.preview --params {params.file} --profile {params.profile} --log {log}"
        " --data {input.data} --out {output.png}"
