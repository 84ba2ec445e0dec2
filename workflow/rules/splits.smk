# Label-fraction splits per downstream task: validation carve + nested stratified subsets.


rule split:
    input:
        data=task_data,
        code=CODE["split"],
    output:
        splits=directory(f"data/{PROFILE}/splits/{{task}}"),
    log:
        f"logs/data/{PROFILE}/splits/{{task}}.log",
    params:
        file=PARAMS_FILE,
        profile=PROFILE,
        values=split_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m hcmoco.processed.splits --params {params.file} --profile {params.profile} --log {log}"
        " --task {wildcards.task} --data {input.data} --out {output.splits}"
