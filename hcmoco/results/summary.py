"""What the results say, in words generated from the numbers. Runs of two inits at one (task,
fraction, seed) share the split file and the seed, so every claim is tested paired (stats.paired):
per seed the difference in points, then its mean with a 95% Student-t interval and a verdict.
The claims, as the paper makes them: HCMoCo beats scratch and the sample-level baseline at every
task and label fraction and in the versatility settings, and the loss ablations order as
full HCMoCo >= each single-loss ablation >= sample-level."""
from __future__ import annotations

from dataclasses import dataclass

from hcmoco.results.collect import TASK_METRICS, TASK_TITLES
from hcmoco.results.stats import NA, VERDICTS, Paired, all_verdict, paired
from hcmoco.results.tables import INIT_LABELS, SETTING_LABELS, Table, percent

BASELINES = ("scratch", "sample")
ABLATIONS = ("hcmoco_nodense", "hcmoco_nosparse")
# each pair says "the first is better": full >= each ablation, each ablation >= sample-level
ABLATION_PAIRS = [("hcmoco", a) for a in ABLATIONS] + [(a, "sample") for a in ABLATIONS]
VERSATILITY_SETTINGS = {
    ("crossmodal", "rgb->rgb"): "labels on RGB, tested on RGB",
    ("crossmodal", "rgb->depth"): "labels on RGB, tested on depth",
    ("crossmodal", "depth->depth"): "labels on depth, tested on depth",
    ("crossmodal", "depth->rgb"): "labels on depth, tested on RGB",
    ("missing", "rgbd->rgbd"): "RGB-D training, RGB-D test",
    ("missing", "rgbd->rgb"): "RGB-D training, RGB-only test",
    ("missing", "rgbd->depth"): "RGB-D training, depth-only test",
}
COMPARISON_FIELDS = ["section", "task_or_experiment", "fraction_or_setting", "metric", "a", "b", "n",
                     "mean_diff", "ci_low", "ci_high", "verdict"]
SECTION_LABELS = {"finetune": "fine-tuning", "ablation": "loss ablation", "versatility": "versatility",
                  "frozen": "frozen features"}


@dataclass(frozen=True)
class Comparison:
    """The claim "init a is better than init b" in one setting, tested on the paired seeds."""
    section: str           # finetune, ablation, versatility or frozen
    subject: str           # task or versatility experiment
    where: float | str     # label fraction or versatility setting
    metric: str
    setting: str           # the same in words: "RGB human parsing, 10% labels, mIoU"
    a: str
    b: str
    result: Paired

    def claim(self) -> str:
        return f"{INIT_LABELS.get(self.a, self.a)} vs {INIT_LABELS.get(self.b, self.b)}"

    def numbers(self) -> str:
        """'+0.5 points [95% CI -0.3, +1.3], 3 paired seeds'; one seed has no interval."""
        r = self.result
        if r.ci is None:
            return f"{r.mean:+.1f} points, {r.n} paired seed (no interval)"
        return f"{r.mean:+.1f} points [95% CI {r.ci[0]:+.1f}, {r.ci[1]:+.1f}], {r.n} paired seeds"

    def line(self) -> str:
        return f"- {self.setting}: {self.claim()} {self.numbers()}: {self.result.verdict}."

    def row(self) -> dict:
        r, ci = self.result, self.result.ci
        return {"section": self.section, "task_or_experiment": self.subject, "fraction_or_setting": self.where,
                "metric": self.metric, "a": self.a, "b": self.b, "n": r.n, "mean_diff": round(r.mean, 4),
                "ci_low": NA if ci is None else round(ci[0], 4), "ci_high": NA if ci is None else round(ci[1], 4),
                "verdict": r.verdict}


def _matches(record: dict, key: str, wanted) -> bool:
    if isinstance(wanted, float):  # fractions: as parsed from folder names and params
        return abs(record[key] - wanted) < 1e-9
    return record[key] == wanted


def by_seed(records: list[dict], **match) -> dict[int, float]:
    """{seed: value} of the records that match every given key."""
    return {r["seed"]: r["value"] for r in records
            if r["value"] is not None and all(_matches(r, k, v) for k, v in match.items())}


def _compare(section, subject, where, metric, setting, a, b, records, match: dict) -> Comparison | None:
    """a vs b on the records matching `match`; None when no seed was run by both."""
    result = paired(by_seed(records, init=a, **match), by_seed(records, init=b, **match))
    return Comparison(section, subject, where, metric, setting, a, b, result) if result.n else None


def count_line(claim: str, verdicts: list[str]) -> str:
    """'<claim>: confirmed in 2, refuted in 0, inconclusive in 6 of 8 settings.'"""
    counts = ", ".join(f"{v} in {verdicts.count(v)}" for v in VERDICTS)
    return f"{claim}: {counts} of {len(verdicts)} settings."


MOVES = 0.01


def informative_metric(records: list[dict], task: str) -> tuple[str, str, str | None]:
    """(metric, label, note): the task's main metric, or the first of its other metrics that
    moves between runs when the main one does not (a GPS AP of 0 everywhere says nothing about
    the inits); the note says so. A metric moves when its runs span at least MOVES (1 point):
    a GPSm AP between 0.00 and 0.04 points is as mute as a constant."""
    metrics = TASK_METRICS[task]
    for i, (metric, label) in enumerate(metrics):
        values = {r["value"] for r in records if r["task"] == task and r["metric"] == metric and r["value"] is not None}
        if len(values) > 1 and max(values) - min(values) >= MOVES:
            if i == 0:
                return metric, label, None
            main_values = {r["value"] for r in records if r["task"] == task and r["metric"] == metrics[0][0]}
            shown = sorted(v * 100 for v in main_values if v is not None)
            span = ("undefined" if not shown else f"{shown[0]:.1f}" if shown[-1] - shown[0] < 0.05
                    else f"between {shown[0]:.1f} and {shown[-1]:.1f}")
            return metric, label, (f"{TASK_TITLES[task]}: {metrics[0][1]} is {span} in every run, so the "
                                   f"comparison uses {label}.")
    return metrics[0][0], metrics[0][1], None


def _fractions(records: list[dict], task: str, init: str) -> list[float]:
    return sorted({r["fraction"] for r in records if r["task"] == task and r["init"] == init})


def finetune_comparisons(records: list[dict], section: str = "finetune") -> list[Comparison]:
    """HCMoCo vs each baseline at every task and fraction both ran, on the task's informative
    metric; `section` "frozen" for the records of the frozen-feature protocol."""
    out = []
    for task in TASK_METRICS:
        metric, label, _ = informative_metric(records, task)
        for f in _fractions(records, task, "hcmoco"):
            setting = f"{TASK_TITLES[task]}, {percent(f)} labels, {label}"
            match = {"task": task, "metric": metric, "fraction": f}
            for base in BASELINES:
                c = _compare(section, task, f, metric, setting, "hcmoco", base, records, match)
                out += [c] if c else []
    return out


def ablation_settings(records: list[dict]) -> list[tuple[str, list[Comparison]]]:
    """(setting, its four comparisons) per task and fraction where full HCMoCo, both single-loss
    ablations and sample-level share a seed pairwise; the ordering holds only if all four do."""
    out = []
    for task in TASK_METRICS:
        metric, label, _ = informative_metric(records, task)
        for f in _fractions(records, task, ABLATIONS[0]):
            setting = f"{TASK_TITLES[task]}, {percent(f)} labels, {label}"
            match = {"task": task, "metric": metric, "fraction": f}
            comps = [_compare("ablation", task, f, metric, setting, a, b, records, match) for a, b in ABLATION_PAIRS]
            if all(comps):
                out.append((setting, comps))
    return out


def deciding(comparisons: list[Comparison]) -> Comparison:
    """The comparison behind the joint verdict: among those whose own verdict is the joint one
    (all of them when confirmed), the one with the smallest mean difference: the clearest
    refutation, the weakest inconclusive link, or the narrowest confirmation."""
    verdict = all_verdict(c.result.verdict for c in comparisons)
    return min((c for c in comparisons if c.result.verdict == verdict), key=lambda c: c.result.mean)


def versatility_comparisons(records: list[dict]) -> list[Comparison]:
    """HCMoCo vs each baseline in every versatility (experiment, setting), paired over seeds."""
    found = {(r["experiment"], r["setting"]) for r in records}
    order = [k for k in VERSATILITY_SETTINGS if k in found] + sorted(found - set(VERSATILITY_SETTINGS))
    out = []
    for experiment, s in order:
        words = VERSATILITY_SETTINGS.get((experiment, s), f"{experiment}, {SETTING_LABELS.get(s, s)}")
        for base in BASELINES:
            c = _compare("versatility", experiment, s, "miou", f"{words} (mIoU)", "hcmoco", base, records,
                         {"experiment": experiment, "setting": s})
            out += [c] if c else []
    return out


def comparisons(finetune: list[dict], versatility: list[dict], frozen: list[dict] = ()) -> list[Comparison]:
    """Every paired comparison of the summary, in its order (the frozen-feature ones last)."""
    return [*finetune_comparisons(finetune), *(c for _, comps in ablation_settings(finetune) for c in comps),
            *versatility_comparisons(versatility), *finetune_comparisons(list(frozen), "frozen")]


def _baseline_counts(comps: list[Comparison]) -> list[str]:
    return [count_line(f"HCMoCo > {INIT_LABELS[base]}", [c.result.verdict for c in comps if c.b == base])
            for base in BASELINES if any(c.b == base for c in comps)]


def finetune_statements(records: list[dict], section: str = "finetune") -> list[str]:
    comps, lines = finetune_comparisons(records, section), []
    for task in TASK_METRICS:
        note = informative_metric(records, task)[2]
        lines += ([f"- {note}"] if note else []) + [c.line() for c in comps if c.subject == task]
    return lines + ["", *_baseline_counts(comps)] if comps else lines


def ablation_statements(records: list[dict]) -> list[str]:
    """Per setting the joint verdict on full >= each ablation >= sample-level and the comparison
    that decided it (each of the four is in comparisons.md)."""
    lines, verdicts = [], []
    for setting, comps in ablation_settings(records):
        verdict, c = all_verdict(x.result.verdict for x in comps), deciding(comps)
        confirmed = sum(x.result.verdict == "confirmed" for x in comps)
        lines.append(f"- {setting}: {verdict} ({confirmed} of {len(comps)} comparisons confirmed); "
                     f"decided by {c.claim()} {c.numbers()}.")
        verdicts.append(verdict)
    if not lines:
        return []
    return lines + ["", count_line("Full HCMoCo ≥ each single-loss ablation ≥ sample-level", verdicts)]


def versatility_statements(records: list[dict]) -> list[str]:
    comps = versatility_comparisons(records)
    return [c.line() for c in comps] + ["", *_baseline_counts(comps)] if comps else []


def comparisons_table(comps: list[Comparison]) -> Table:
    """Every comparison as one row, for comparisons.md."""
    t = Table("comparisons", "Paired comparisons",
              "Per seed the difference of the two inits (same split, same seed) in points; mean, 95% Student-t "
              "interval over the paired seeds, and the verdict on the claim that the first init is better.",
              "section", ["setting", "claim", "paired seeds", "mean difference", "95% CI", "verdict"])
    for c in comps:
        r = c.result
        ci = NA if r.ci is None else f"[{r.ci[0]:+.1f}, {r.ci[1]:+.1f}]"
        t.rows.append((SECTION_LABELS[c.section], [c.setting, c.claim(), str(r.n), f"{r.mean:+.1f}", ci, r.verdict]))
    return t
