"""Aggregate every run of a profile into the paper's tables, figures and DVC metrics/plots.

    python -m hcmoco.results.aggregate --profile default --results results/default \\
        --tables results/default/tables --figures results/default/figures \\
        --metrics results/default/metrics.json --plots results/default/plots

Writes `<tables>/<name>.{md,csv,tex}` per table (the frozen-feature protocol's as `frozen_<task>`),
`all.md` (every table), `summary.csv` (per cell: expected where a reference number applies, ours,
difference), `comparisons.{csv,md}` (every paired comparison of two inits the summary states),
`summary.md` (the README's results section); `<figures>/*.png` (`fractions_<task>.png`,
`frozen_fractions_<task>.png`, with `qualitative_<task>.png` where the profile's data is at
data/<profile>: hcmoco.results.qualitative); `<metrics>` (main-metric means for `dvc metrics`);
`<plots>` (per-task CSVs for `dvc plots`). Every output is written atomically.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_directory, atomic_write_text
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import finetune_plan, frozen_plan, versatility_plan
from hcmoco.results import plots, qualitative
from hcmoco.results.collect import (TASK_METRICS, TASK_TITLES, finetune_records, pretrain_histories,
                                    retrieval_records, versatility_records)
from hcmoco.results.summary import (COMPARISON_FIELDS, ablation_statements, comparisons, comparisons_table,
                                    finetune_statements, versatility_statements)
from hcmoco.results.tables import ablation_table, retrieval_table, task_tables, versatility_table
from hcmoco.runlog import RunLog, log_path_for

SUMMARY_FIELDS = ["table", "row", "column", "metric", "expected", "ours", "std", "runs", "difference"]
FROZEN_TABLES = [f"frozen_{task}" for task in TASK_METRICS]


def build(params: dict, results: Path) -> dict:
    ft = finetune_records(results, finetune_plan(params))
    vs = versatility_records(results, versatility_plan(params))
    fz = finetune_records(results, frozen_plan(params), folder="frozen")
    datasets = {task: spec["domain"] for task, spec in params["splits"]["tasks"].items()}
    main = task_tables(ft, datasets)
    extra = [ablation_table(ft), versatility_table(vs, "crossmodal"), versatility_table(vs, "missing"),
             retrieval_table(retrieval_records(results))]
    return {"finetune": ft, "versatility": vs, "frozen": fz,
            "tables": main + [t for t in extra if t is not None] + task_tables(fz, datasets, frozen=True),
            "histories": pretrain_histories(results, ["stage1", *params["pretrain"]["variants"]]),
            # read here, before anything is written: a missing predictions file fails like missing metrics
            "qualitative": qualitative.collect(params, results, ft)}


def summary_markdown(profile: str, built: dict) -> str:
    tables = {t.name: t for t in built["tables"]}
    parts = [f"Profile `{profile}`: {len(built['finetune'])} fine-tuning results "
             f"and {len(built['versatility'])} versatility measurements. Cells are mean ± std (runs) in %.", "",
             "Comparisons are paired: runs of two inits share the split and the seed, so each seed gives one "
             "difference (in points). A statement gives their mean, its 95% Student-t interval and the verdict "
             "on the claim that the first init is better: confirmed when the interval lies above 0, refuted "
             "when below, inconclusive when it holds 0 or only one seed was paired. Every comparison is in "
             "`comparisons.md`.", ""]
    for task in TASK_METRICS:
        for name in (task, f"{task}_mean_gps"):  # DensePose: mean GPS moves where GPS AP stays 0
            if name in tables:
                parts.append(tables[name].markdown())
    for name in ("ablation", "crossmodal", "missing"):
        if name in tables:
            parts.append(tables[name].markdown())
    for title, lines in (("HCMoCo against the baselines", finetune_statements(built["finetune"])),
                         ("Loss ablations", ablation_statements(built["finetune"])),
                         ("Versatility", versatility_statements(built["versatility"]))):
        parts += [f"**{title}.**", "", *(lines or ["- no runs."]), ""]
    runs = len({(r["task"], r["init"], r["fraction"], r["seed"]) for r in built["frozen"]})
    parts += ["**Frozen features.**", "",
              f"{runs} runs of the frozen-feature protocol: per task and init the backbone "
              "is frozen, its features are computed once, and a light head (a linear probe; the A2J head for "
              "3D pose) is trained on them per label fraction and seed.", ""]
    parts += [tables[f"frozen_{name}"].markdown() for task in TASK_METRICS
              for name in (task, f"{task}_mean_gps") if f"frozen_{name}" in tables]
    parts += ["**HCMoCo against the baselines, frozen features.**", "",
              *(finetune_statements(built["frozen"], "frozen") or ["- no runs."]), ""]
    return "\n".join(parts)


def metrics_json(built: dict) -> dict:
    """{table: {init: {column: mean %}}} of each task's main table (fine-tuning: <task>, frozen
    features: frozen_<task>) and the versatility tables, for `dvc metrics` (ASCII keys: "RGB to depth")."""
    out: dict = {}
    for n in (n for t in built["tables"] for n in t.numbers):
        if n["table"] in (*TASK_METRICS, *FROZEN_TABLES, "crossmodal", "missing") and n["ours"] != "n/a":
            out.setdefault(n["table"], {}).setdefault(n["row"], {})[n["column"].replace("→", " to ")] = n["ours"]
    return out


def csv_text(fields: list[str], rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write(params: dict, built: dict, tables: Path, figures: Path, metrics: Path, plot_data: Path) -> None:
    with atomic_directory(tables) as tmp:
        for t in built["tables"]:
            for ext, text in (("md", t.markdown()), ("csv", t.csv()), ("tex", t.latex())):
                (tmp / f"{t.name}.{ext}").write_text(text)
        (tmp / "all.md").write_text("\n".join(t.markdown() for t in built["tables"]))
        (tmp / "summary.csv").write_text(csv_text(SUMMARY_FIELDS, (n for t in built["tables"] for n in t.numbers)))
        (tmp / "summary.md").write_text(summary_markdown(params["profile"], built))
        comps = comparisons(built["finetune"], built["versatility"], built["frozen"])
        (tmp / "comparisons.csv").write_text(csv_text(COMPARISON_FIELDS, (c.row() for c in comps)))
        (tmp / "comparisons.md").write_text(comparisons_table(comps).markdown())
    with atomic_directory(figures) as tmp:
        for task in TASK_METRICS:
            plots.fraction_plot(built["finetune"], task, tmp / f"fractions_{task}.png")
            plots.fraction_plot(built["frozen"], task, tmp / f"frozen_fractions_{task}.png",
                                f"{TASK_TITLES[task]}, frozen backbone")
        plots.pretrain_plot(built["histories"], tmp / "pretrain_losses.png")
        qualitative.write_sheets(built.get("qualitative", {}), tmp)
    with atomic_directory(plot_data) as tmp:
        for task in TASK_METRICS:
            metric = TASK_METRICS[task][0][0]
            series = plots.fraction_series(built["finetune"], task, metric)
            fractions = sorted({p[0] for pts in series.values() for p in pts})
            rows = [{"fraction_percent": round(f * 100, 4), **{init: next((round(p[1], 4) for p in pts if p[0] == f), "")
                                                      for init, pts in series.items()}} for f in fractions]
            (tmp / f"{task}.csv").write_text(csv_text(["fraction_percent", *series], rows))
    atomic_write_text(metrics, json.dumps(metrics_json(built), indent=1, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="the profile's results folder (runs are read from it)")
    parser.add_argument("--tables", required=True, help="output folder of the tables")
    parser.add_argument("--figures", required=True, help="output folder of the figures")
    parser.add_argument("--metrics", required=True, help="output JSON for dvc metrics")
    parser.add_argument("--plots", required=True, help="output folder of the CSVs for dvc plots")

    def body(args, params):
        log = RunLog(log_path_for(Path(args.tables)), params)
        built = build(params, Path(args.results))
        write(params, built, Path(args.tables), Path(args.figures), Path(args.metrics), Path(args.plots))
        log.event("done", tables=[t.name for t in built["tables"]], runs=len(built["finetune"]),
                  frozen=len(built["frozen"]))
        print(f"{args.tables}: {len(built['tables'])} tables from {len(built['finetune'])} fine-tuning, "
              f"{len(built['versatility'])} versatility and {len(built['frozen'])} frozen-feature measurements")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
