"""Figures (matplotlib, PNG): metric vs label fraction per task (log x, one line per init, a band
of ± one std over seeds), and the pre-training loss curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hcmoco.atomic import atomic_write_bytes  # noqa: E402
from hcmoco.results.collect import TASK_METRICS, TASK_TITLES  # noqa: E402
from hcmoco.results.stats import cell  # noqa: E402
from hcmoco.results.tables import INIT_LABELS, _inits  # noqa: E402


def _save(fig, path: Path) -> None:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def fraction_series(records: list[dict], task: str, metric: str) -> dict[str, list[tuple[float, float, float, int]]]:
    """init -> [(fraction, mean, std, runs)] in percent, fractions ascending, empty cells left out."""
    recs = [r for r in records if r["task"] == task and r["metric"] == metric]
    series = {}
    for init in _inits(recs):
        points = []
        for f in sorted({r["fraction"] for r in recs if r["init"] == init}):
            c = cell(r["value"] for r in recs if r["init"] == init and r["fraction"] == f)
            if c.n:
                points.append((f, c.mean * 100, c.std * 100, c.n))
        if points:
            series[init] = points
    return series


def fraction_plot(records: list[dict], task: str, path: Path, title: str | None = None) -> bool:
    metric, label = TASK_METRICS[task][0]
    series = fraction_series(records, task, metric)
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for init, points in series.items():
        f, mean, std, _ = (np.array(v) for v in zip(*points))
        line, = ax.plot(f * 100, mean, marker="o", label=INIT_LABELS.get(init, init))
        ax.fill_between(f * 100, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xscale("log")
    ticks = sorted({p[0] * 100 for pts in series.values() for p in pts})
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("label fraction")
    ax.set_ylabel(f"{label} (%)")
    ax.set_title(title or TASK_TITLES[task])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def pretrain_plot(histories: dict[str, list[dict]], path: Path, window: int = 10) -> bool:
    """Total and per-term pre-training losses per run (moving average over `window` steps)."""
    runs = {k: v for k, v in histories.items() if v}
    if not runs:
        return False
    terms = ["loss"] + sorted({k for h in runs.values() for k in h[0] if k not in ("step", "lr", "loss")})
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for run, history in runs.items():
            pts = [(r["step"], r[term]) for r in history if r.get(term) is not None]
            if not pts:
                continue
            steps, values = (np.array(v, dtype=float) for v in zip(*pts))
            k = max(1, min(window, len(values) // 5))
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], smooth, label=INIT_LABELS.get(run, run), linewidth=1)
        ax.set_title(term if term != "loss" else "total loss")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save(fig, path)
    return True
