"""The paper's tables from run records: one per task (inits x label fractions), the loss
ablations, cross-modality supervision, missing-modality inference, and retrieval; written as
Markdown, CSV and LaTeX. Cells are mean ± std (runs) in percent; "n/a" where nothing was run or
nothing is known. Reference numbers (docs/METHOD.md section 6) appear only where the setting matches:
the task's dataset is the one the number was reported on.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from hcmoco.results.collect import TASK_METRICS, TASK_TITLES
from hcmoco.results.stats import NA, Cell, cell
from hcmoco.tasks import TASKS

INIT_LABELS = {"scratch": "scratch (random init)", "imagenet": "ImageNet", "stage1": "stage 1 only",
               "sample": "sample-level (CMC)", "hcmoco": "HCMoCo", "hcmoco_nodense": "HCMoCo w/o dense",
               "hcmoco_nosparse": "HCMoCo w/o sparse"}
INIT_ORDER = ["scratch", "imagenet", "stage1", "sample", "hcmoco", "hcmoco_nodense", "hcmoco_nosparse"]
ABLATION_ROWS = ["sample", "hcmoco_nodense", "hcmoco_nosparse", "hcmoco"]
SETTING_LABELS = {"rgb->rgb": "RGB→RGB", "rgb->depth": "RGB→depth", "depth->depth": "depth→depth",
                  "depth->rgb": "depth→RGB", "rgbd->rgbd": "RGB-D", "rgbd->rgb": "RGB only",
                  "rgbd->depth": "depth only"}
# docs/METHOD.md section 6: the only cells of the paper's tables known here (percent), from the task definitions
REFERENCES = [{"task": name, **ref} for name, task in TASKS.items() for ref in task.references]


@dataclass
class Table:
    name: str
    title: str
    caption: str
    row_label: str
    columns: list[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    numbers: list[dict] = field(default_factory=list)  # long form for the summary CSV

    def markdown(self) -> str:
        head = f"| {self.row_label} | " + " | ".join(self.columns) + " |"
        rule = "|" + "---|" * (len(self.columns) + 1)
        body = [f"| {label} | " + " | ".join(cells) + " |" for label, cells in self.rows]
        return "\n".join([f"### {self.title}", "", self.caption, "", head, rule, *body, ""])

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([self.row_label, *self.columns])
        writer.writerows([label, *cells] for label, cells in self.rows)
        return buf.getvalue()

    def latex(self) -> str:
        def esc(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("%", r"\%"), ("&", r"\&"), ("_", r"\_"), ("#", r"\#"),
                         ("±", r"$\pm$"), ("→", r"$\to$"), ("@", "@")):
                s = s.replace(a, b)
            return s
        lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(self.title)}. {esc(self.caption)}}}",
                 rf"\label{{tab:{self.name}}}", r"\begin{tabular}{l" + "c" * len(self.columns) + "}", r"\toprule",
                 " & ".join(map(esc, [self.row_label, *self.columns])) + r" \\", r"\midrule"]
        lines += [" & ".join(map(esc, [label, *cells])) + r" \\" for label, cells in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        return "\n".join(lines)


def percent(f: float) -> str:
    return f"{f * 100:g}%"


def _inits(records) -> list[str]:
    found = {r["init"] for r in records}
    return [i for i in INIT_ORDER if i in found] + sorted(found - set(INIT_ORDER))


def _number(table: str, row: str, column: str, metric: str, c: Cell, expected: float | None = None) -> dict:
    ours = None if c.mean is None else round(c.mean * 100, 4)
    return {"table": table, "row": row, "column": column, "metric": metric,
            "expected": NA if expected is None else expected, "ours": NA if ours is None else ours,
            "std": NA if c.std is None else round(c.std * 100, 4), "runs": c.n,
            "difference": NA if expected is None or ours is None else round(ours - expected, 4)}


def reference(task: str, dataset: str, init: str, metric: str, fraction: float) -> float | None:
    for ref in REFERENCES:
        if (ref["task"], ref["dataset"], ref["init"], ref["metric"]) == (task, dataset, init, metric) \
                and abs(ref["fraction"] - fraction) < 1e-9:
            return ref["value"]
    return None


def task_tables(records: list[dict], datasets: dict[str, str], frozen: bool = False) -> list[Table]:
    """Per task and metric: inits x fractions, plus the paper's row (its numbers or n/a).
    frozen: the frozen-feature runs instead, as tables `frozen_<name>`, without the paper's row
    (the paper reports fine-tuning only)."""
    tables = []
    for task, metrics in TASK_METRICS.items():
        recs = [r for r in records if r["task"] == task]
        if not recs:
            continue
        fractions = sorted({r["fraction"] for r in recs})
        dataset = datasets.get(task, "")
        for i, (metric, label) in enumerate(metrics):
            name = task if i == 0 else f"{task}_{metric}"
            if frozen:
                name = f"frozen_{name}"
                head = TASKS[task].frozen_head
                t = Table(name, f"{TASK_TITLES[task]}, frozen backbone: {label} (%) on {dataset}",
                          f"Mean ± std over seeds (runs) of the test {label} of {head} trained on the frozen "
                          "backbone's features; the head is selected on validation.", "init",
                          [percent(f) for f in fractions])
            else:
                t = Table(name, f"{TASK_TITLES[task]}: {label} (%) on {dataset}",
                          f"Mean ± std over seeds (runs) of the test {label}; the model is selected on validation.",
                          "init", [percent(f) for f in fractions])
            for init in _inits(recs):
                cells = [cell(r["value"] for r in recs if r["init"] == init and r["metric"] == metric
                              and r["fraction"] == f) for f in fractions]
                t.rows.append((INIT_LABELS.get(init, init), [c.text() for c in cells]))
                t.numbers += [_number(name, init, percent(f), metric, c,
                                      None if frozen else reference(task, dataset, init, metric, f))
                              for f, c in zip(fractions, cells)]
            if not frozen:
                refs = [reference(task, dataset, "hcmoco", metric, f) for f in fractions]
                t.rows.append(("HCMoCo (paper)", [NA if v is None else f"{v:.2f}" for v in refs]))
            tables.append(t)
    return tables


def ablation_table(records: list[dict]) -> Table | None:
    """Loss ablations: each task's main metric at the fractions every ablation row was run at."""
    main = {t: m[0][0] for t, m in TASK_METRICS.items()}
    recs = [r for r in records if r["metric"] == main[r["task"]] and r["init"] in ABLATION_ROWS]
    rows = [i for i in ABLATION_ROWS if any(r["init"] == i for r in recs)]
    if len(rows) < 2:
        return None
    columns = []
    for task in TASK_METRICS:
        shared = set.intersection(*({r["fraction"] for r in recs if r["task"] == task and r["init"] == i}
                                    for i in rows))
        columns += [(task, f) for f in sorted(shared)]
    t = Table("ablation", "Loss ablations", "Main metric (%) of each task, mean ± std over seeds (runs); "
              "sample-level = stage 2 without dense and sparse losses.", "pre-training",
              [f"{task} {percent(f)}" for task, f in columns])
    for init in rows:
        cells = [cell(r["value"] for r in recs if (r["task"], r["fraction"], r["init"]) == (task, f, init))
                 for task, f in columns]
        t.rows.append((INIT_LABELS.get(init, init), [c.text() for c in cells]))
        t.numbers += [_number("ablation", init, f"{task} {percent(f)}", main[task], c) for (task, f), c in zip(columns, cells)]
    return t


def versatility_table(records: list[dict], experiment: str) -> Table | None:
    recs = [r for r in records if r["experiment"] == experiment]
    if not recs:
        return None
    settings = [s for s in SETTING_LABELS if any(r["setting"] == s for r in recs)]
    title, caption = {
        "crossmodal": ("Cross-modality supervision", "Depth-parsing data; a classifier on the frozen shared "
                       "dense space is trained with labels on one modality and tested on each (mIoU %)."),
        "missing": ("Missing-modality inference", "RGB-D parsing trained with max fusion of the dense features, "
                    "tested with both modalities or one (mIoU %)."),
    }[experiment]
    t = Table(experiment, title, caption, "init", [SETTING_LABELS[s] for s in settings])
    for init in _inits(recs):
        cells = [cell(r["value"] for r in recs if r["init"] == init and r["setting"] == s) for s in settings]
        t.rows.append((INIT_LABELS.get(init, init), [c.text() for c in cells]))
        t.numbers += [_number(experiment, init, SETTING_LABELS[s], "miou", c) for s, c in zip(settings, cells)]
    return t


def retrieval_table(records: list[dict]) -> Table | None:
    if not records:
        return None
    pairs = sorted({r["pair"] for r in records})
    models = [m for m in INIT_ORDER if any(r["model"] == m for r in records)]
    n = records[0]["samples"]
    t = Table("retrieval", "Held-out cross-modal retrieval",
              f"Top-5 accuracy (%) / median rank over {n} test pairs of unseen people; chance "
              f"{min(5 / n, 1) * 100:.2f}% / {(n - 1) / 2:g}.", "pre-training",
              [p.replace("->", "→") for p in pairs])
    for m in models:
        by_pair = {r["pair"]: r for r in records if r["model"] == m}
        t.rows.append((INIT_LABELS.get(m, m), [f"{by_pair[p]['top5'] * 100:.1f} / {by_pair[p]['median_rank']:g}"
                                               if p in by_pair else NA for p in pairs]))
    return t
