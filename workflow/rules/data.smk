# SynthHuman rendering and per-domain preview sheets.


rule generate:
    input:
        code=CODE["generate"],
    output:
        data=directory(f"data/{PROFILE}/synth/{{domain}}"),
    log:
        f"logs/data/{PROFILE}/synth/{{domain}}.jsonl",
    params:
        values=synth_values,
    threads: 2
    resources:
        mem_mb=4000,
    shell:
        "python -m hcmoco.data.generate --params {PARAMS_FILE} --profile {PROFILE}"
        " --domain {wildcards.domain} --out {output.data}"


rule preview:
    input:
        data=rules.generate.output.data,
        code=CODE["preview"],
    output:
        png=report(f"results/{PROFILE}/preview/{{domain}}.png", caption="../report/preview.rst",
                   category="Data"),
    log:
        f"logs/results/{PROFILE}/preview/{{domain}}.png.jsonl",
    params:
        values=preview_values,
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m hcmoco.data.preview --params {PARAMS_FILE} --profile {PROFILE}"
        " --data {input.data} --out {output.png}"
