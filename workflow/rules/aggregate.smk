# Every run of the profile -> the paper's tables, figures, DVC metrics and plots; and the
# runtime and peak memory of every job (Snakemake's benchmark files).


rule aggregate:
    input:
        **RULES["aggregate"].input,
    output:
        tables=report(RULES["aggregate"].output["tables"], patterns=["{name}.csv"],
                      caption="../report/tables.rst", category="Tables"),
        figures=report(RULES["aggregate"].output["figures"], patterns=["{name}.png"],
                       caption="../report/figures.rst", category="Figures"),
        metrics=RULES["aggregate"].output["metrics"],
        plots=RULES["aggregate"].output["plots"],
    log:
        RULES["aggregate"].log,
    benchmark:
        RULES["aggregate"].benchmark
    params:
        **RULES["aggregate"].params,
    conda:
        "../envs/hcmoco.yaml"
    threads: RULES["aggregate"].threads
    resources:
        mem_mb=1000,
    shell:
        RULES["aggregate"].shell


# Snakemake-only (DVC writes no benchmark files): one row per job of the profile.
localrules:
    jobs,


rule jobs:
    input:
        **RULES["jobs"].input,
    output:
        csv=report(RULES["jobs"].output["csv"], caption="../report/jobs.rst", category="Jobs"),
        md=RULES["jobs"].output["md"],
    log:
        RULES["jobs"].log,
    threads: 1
    run:
        jobs_table(PARAMS, PROFILE, output.csv, output.md, log[0])
