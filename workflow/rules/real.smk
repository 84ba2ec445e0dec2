# Real datasets (profile `paper`): fetch public data / check licensed layouts, preprocess to the
# processed format; ImageNet HRNetV2-W18 weights converted to backbone files (init `imagenet`).


rule fetch:
    output:
        manifest="data/raw/{raw}/MANIFEST.json",
    log:
        "logs/data/raw/{raw}.log",
    params:
        out=fetched_dir,
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "python -m hcmoco.prepare.fetch --dataset {wildcards.raw} --out {params.out} >> {log} 2>&1"


rule prepare:
    input:
        manifest=raw_manifest,
        also=also_manifests,
        code=CODE["prepare"],
    output:
        data=directory(f"data/{PROFILE}/real/{{dataset}}"),
    log:
        f"logs/data/{PROFILE}/real/{{dataset}}.log",
    params:
        raw=raw_dir,
        module=preprocessor,
        options=preprocessor_options,
        resolution=real_resolution,
        values=real_values,
    conda:
        "../envs/hcmoco.yaml"
    threads: 8
    resources:
        mem_mb=16000,
    shell:
        "python -m hcmoco.prepare.{params.module} --raw {params.raw} --out {output.data}"
        " --resolution {params.resolution} --workers {threads} {params.options} >> {log} 2>&1"


rule imagenet_init:
    input:
        weights="data/raw/imagenet/hrnetv2_w18_imagenet_pretrained.pth",
        code="hcmoco/models/imagenet.py",
    output:
        model=directory(f"models/{PROFILE}/pretrain/imagenet"),
    log:
        f"logs/models/{PROFILE}/pretrain/imagenet.log",
    conda:
        "../envs/hcmoco.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "(mkdir -p {output.model} && python -m hcmoco.models.imagenet --weights {input.weights}"
        " --out {output.model}/rgb_backbone.pt"
        " && python -m hcmoco.models.imagenet --weights {input.weights} --modality depth"
        " --out {output.model}/depth_backbone.pt) >> {log} 2>&1"
