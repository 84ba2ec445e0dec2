"""What the results say, in words generated from the numbers: does HCMoCo beat scratch and the
sample-level baseline at the small label fractions, by how much against the seed spread, and do
the loss ablations order as the paper claims (full > w/o dense, w/o sparse > sample-level)."""
from __future__ import annotations

from hcmoco.results.collect import TASK_METRICS, TASK_TITLES
from hcmoco.results.stats import Cell, cell
from hcmoco.results.tables import INIT_LABELS, percent

SMALL_FRACTIONS = (0.01, 0.1)


def compare(a: Cell, b: Cell) -> str | None:
    """'+d.d points (a ± sa vs b ± sb): <verdict>' in percent points; None when a side is empty.
    Beyond the spread: |difference| larger than the two seed stds together."""
    if not a.n or not b.n:
        return None
    diff = (a.mean - b.mean) * 100
    spread = (a.std + b.std) * 100
    if a.n < 2 or b.n < 2:
        verdict = "one seed, no spread to compare with"
    elif abs(diff) > spread:
        verdict = "beyond the seed spread"
    else:
        verdict = "within the seed spread"
    return (f"{diff:+.1f} points ({a.mean * 100:.1f} ± {a.std * 100:.1f} vs {b.mean * 100:.1f} ± "
            f"{b.std * 100:.1f}, {verdict})")


def _cell(records, task, metric, init, fraction) -> Cell:
    return cell(r["value"] for r in records if (r["task"], r["metric"], r["init"]) == (task, metric, init)
                and abs(r["fraction"] - fraction) < 1e-9)


def informative_metric(records: list[dict], task: str) -> tuple[str, str, str | None]:
    """(metric, label, note): the task's main metric, or the first of its other metrics whose
    values differ between runs when the main one is the same for every run (a GPS AP of 0
    everywhere says nothing about the inits); the note says so."""
    metrics = TASK_METRICS[task]
    for i, (metric, label) in enumerate(metrics):
        values = {r["value"] for r in records if r["task"] == task and r["metric"] == metric and r["value"] is not None}
        if len(values) > 1:
            if i == 0:
                return metric, label, None
            main_values = {r["value"] for r in records if r["task"] == task and r["metric"] == metrics[0][0]}
            shown = ", ".join(f"{v * 100:.1f}" for v in sorted(v for v in main_values if v is not None)) or "undefined"
            return metric, label, (f"{TASK_TITLES[task]}: {metrics[0][1]} is {shown} for every run, so the "
                                   f"comparison uses {label}.")
    return metrics[0][0], metrics[0][1], None


def finetune_statements(records: list[dict]) -> list[str]:
    lines = []
    for task in TASK_METRICS:
        metric, label, note = informative_metric(records, task)
        if note:
            lines.append(f"- {note}")
        fractions = sorted({r["fraction"] for r in records if r["task"] == task and r["init"] == "hcmoco"})
        for f in [f for f in fractions if any(abs(f - s) < 1e-9 for s in SMALL_FRACTIONS)]:
            ours = _cell(records, task, metric, "hcmoco", f)
            for base in ("scratch", "sample"):
                text = compare(ours, _cell(records, task, metric, base, f))
                if text:
                    lines.append(f"- {TASK_TITLES[task]}, {percent(f)} labels, {label}: HCMoCo vs "
                                 f"{INIT_LABELS[base]} {text}.")
    return lines


def ablation_statements(records: list[dict]) -> list[str]:
    """Per task and fraction where every ablation row ran: does full >= each ablation >= sample hold?"""
    lines, holds, total = [], 0, 0
    for task in TASK_METRICS:
        metric, label, _ = informative_metric(records, task)
        fractions = sorted({r["fraction"] for r in records if r["task"] == task and r["init"] == "hcmoco_nodense"})
        for f in fractions:
            c = {i: _cell(records, task, metric, i, f) for i in ("hcmoco", "hcmoco_nodense", "hcmoco_nosparse", "sample")}
            if not all(x.n for x in c.values()):
                continue
            m = {i: x.mean * 100 for i, x in c.items()}
            if len({round(v, 1) for v in m.values()}) == 1:
                lines.append(f"- {TASK_TITLES[task]}, {percent(f)}: every row {m['hcmoco']:.1f} ({label}); no order.")
                continue
            ok = m["hcmoco"] >= max(m["hcmoco_nodense"], m["hcmoco_nosparse"]) and \
                min(m["hcmoco_nodense"], m["hcmoco_nosparse"]) >= m["sample"]
            holds, total = holds + ok, total + 1
            order = " > ".join(f"{INIT_LABELS[i]} {m[i]:.1f}" for i in sorted(m, key=m.get, reverse=True))
            lines.append(f"- {TASK_TITLES[task]}, {percent(f)}, {label}: {order} "
                         f"({'the paper order' if ok else 'not the paper order'}).")
    if total:
        lines.insert(0, f"The paper's order (full HCMoCo ≥ each single-loss ablation ≥ sample-level) holds in "
                        f"{holds} of {total} task/fraction settings:")
    return lines


def versatility_statements(records: list[dict]) -> list[str]:
    lines = []
    for experiment, setting, what in (("crossmodal", "rgb->depth", "labels on RGB, tested on depth"),
                                      ("crossmodal", "depth->rgb", "labels on depth, tested on RGB"),
                                      ("missing", "rgbd->rgb", "RGB-D training, RGB-only test")):
        c = {i: cell(r["value"] for r in records if (r["experiment"], r["setting"], r["init"]) == (experiment, setting, i))
             for i in ("hcmoco", "scratch", "sample")}
        for base in ("scratch", "sample"):
            text = compare(c["hcmoco"], c[base])
            if text:
                lines.append(f"- {what} (mIoU): HCMoCo vs {INIT_LABELS[base]} {text}.")
    return lines
