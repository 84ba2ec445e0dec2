"""Qualitative sheets: a few test samples of one task, the ground truth and the predictions of
scratch, sample-level and HCMoCo fine-tuning side by side (`qualitative_<task>.png`).

One row per test sample: the first ones of test.json, whose predictions every fine-tuning run
keeps in `predictions.npz` (hcmoco.train.task_eval.predict). Columns: the input (RGB, or depth as
a grey map, near = bright), the ground truth, then one column per init, titled with the init and
its run's test metric (metrics.json). The runs drawn are those of INITS that the params fine-tune,
at the smallest label fraction all of them run, seed 0 (the smallest seed they share).
Parsing is drawn with the 25-colour part palette (background black); DensePose as an IUV image
(U red, V green, part blue), sparse DensePose-COCO ground truth as its points over the image; 3D
pose as its 2D joints with the skeleton over the depth input. The drawing helpers are the
SynthHuman preview's (hcmoco.processed.preview), so a part has one colour in every figure.

Inputs and ground truth come from the task's processed test split under the profile's data
folder; where that folder is absent (results without the data) the sheet is skipped with a note.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcmoco import tasks
from hcmoco.atomic import atomic_write_bytes
from hcmoco.config import cell_dir, domain_dir, finetune_cells
from hcmoco.processed.preview import part_palette
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import LAYOUT_EDGES
from hcmoco.errors import HcmocoError
from hcmoco.results.collect import TASK_METRICS, TASK_TITLES
from hcmoco.results.tables import INIT_LABELS

INITS = ("scratch", "sample", "hcmoco")
# figure geometry: each panel PANEL inches square, HEADER inches above them for the titles
PANEL, HEADER, DPI = 2.0, 0.75, 100


@dataclass
class Row:
    """One test sample of a sheet: its index, the processed sample and per column title the
    prediction arrays of that run for this sample (the task's prediction_keys)."""
    index: int
    sample: dict
    predictions: dict[str, dict[str, np.ndarray]]


@dataclass
class Sheet:
    rows: list[Row]
    edges: list = field(default_factory=list)
    caption: str = ""


def pick_cell(params: dict, task: str) -> tuple[list[str], float, int] | None:
    """(inits, fraction, seed) drawn for `task`: the INITS the params fine-tune, the smallest
    label fraction all of them run, and the smallest seed they share there (0 in every profile);
    None where they share no cell."""
    inits = [i for i in INITS if i == "scratch" or i in params["finetune"]["inits"]]
    shared = set.intersection(*(set(finetune_cells(params, i, task)) for i in inits))
    if not shared:
        return None
    fraction = min(f for f, _ in shared)
    return inits, fraction, min(s for f, s in shared if f == fraction)


def read_predictions(path: Path, task: str) -> dict[str, np.ndarray]:
    """The arrays of one run's predictions.npz; missing, unreadable or lacking a key: one error
    naming the file."""
    if not path.is_file():
        raise HcmocoError(f"{path}: expected predictions missing (the params define the run; re-run its rule)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise HcmocoError(f"{path}: unreadable predictions file ({err})") from None
    for key in ("index", *tasks.get(task).prediction_keys):
        if key not in arrays:
            raise HcmocoError(f"{path}: no {key!r} array (has {', '.join(sorted(arrays))})")
    return arrays


def _title(init: str, records: list[dict], task: str, fraction: float, seed: int) -> str:
    metric, label = TASK_METRICS[task][0]
    value = next((r["value"] for r in records if (r["task"], r["init"], r["fraction"], r["seed"], r["metric"])
                  == (task, init, fraction, seed, metric)), None)
    return f"{INIT_LABELS.get(init, init)}\n{label} " + ("n/a" if value is None else f"{value * 100:.1f}%")


def collect(params: dict, results: Path, records: list[dict], data_root: Path | None = None) -> dict[str, Sheet]:
    """The sheet of every task whose processed test split is under `data_root` (default
    data/<profile>): rows from the predictions of the cells `pick_cell` names, column titles
    from `records` (finetune_records). A missing predictions file of such a cell is an error."""
    data_root = Path("data") / params["profile"] if data_root is None else Path(data_root)
    sheets = {}
    for task, spec in params["splits"]["tasks"].items():
        split_dir = domain_dir(params, spec["domain"], data_root) / "test"
        if not (split_dir / "index.json").is_file():
            print(f"note: {split_dir}: no processed test split here; the qualitative sheet of {task} is skipped")
            continue
        split = ProcessedSplit(split_dir)
        if not (variant := tasks.get(task).variant(split.fields)).keeps_predictions:
            print(f"note: {split_dir}: {type(variant).__name__} runs keep no predictions; the qualitative sheet of "
                  f"{task} is skipped")
            continue
        if (cell := pick_cell(params, task)) is None:
            print(f"note: the inits {', '.join(INITS)} share no fine-tuning cell of {task}; its sheet is skipped")
            continue
        inits, fraction, seed = cell
        titles, preds, index = [], [], None
        for init in inits:
            path = cell_dir(results / "finetune" / task, init, seed, fraction) / "predictions.npz"
            arrays = read_predictions(path, task)
            index = arrays["index"] if index is None else index
            if not np.array_equal(arrays["index"], index):
                raise HcmocoError(f"{path}: test samples {arrays['index'].tolist()}, the other runs' are "
                                  f"{index.tolist()}")
            if index.size and (index.min() < 0 or index.max() >= len(split)):
                raise HcmocoError(f"{path}: test samples {index.tolist()} are not all in the {len(split)} of "
                                  f"{split_dir} (predictions of other data?)")
            titles.append(_title(init, records, task, fraction, seed))
            preds.append(arrays)
        rows = [Row(int(i), split[int(i)], {t: {k: p[k][r] for k in variant.prediction_keys}
                                            for t, p in zip(titles, preds)}) for r, i in enumerate(index)]
        sheets[task] = Sheet(rows, LAYOUT_EDGES.get(split.index.get("layout"), []),
                             f"{TASK_TITLES.get(task, task)}: {fraction * 100:g}% labels, seed {seed}")
    return sheets


def sheet(task: str, rows: list[Row], out_png: Path, *, edges=(), caption: str = "") -> list[str]:
    """Draw `rows` into `out_png` (written atomically): one row per sample, columns input, ground
    truth and each prediction (the rows' titles, in order); returns the column titles. The PNG
    is PANEL * DPI pixels per panel, plus HEADER * DPI pixels of titles on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["input", "ground truth", *(rows[0].predictions if rows else [])]
    width, height = PANEL * len(titles), PANEL * max(len(rows), 1) + HEADER
    fig, axes = plt.subplots(max(len(rows), 1), len(titles), figsize=(width, height), dpi=DPI, squeeze=False)
    # fixed margins rather than tight_layout: the pixel size depends on rows x columns alone
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01 * PANEL / height, top=1 - HEADER / height,
                        wspace=0.04, hspace=0.04)
    palette, spec = part_palette(), tasks.get(task)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for c, title in enumerate(titles):
        axes[0, c].set_title(title, fontsize=8)
    for r, row in enumerate(rows):
        s = row.sample
        spec.draw_input(axes[r, 0], s)
        axes[r, 0].text(0.03, 0.97, f"#{row.index}", transform=axes[r, 0].transAxes, va="top", fontsize=7,
                        color="white", bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})
        spec.draw(axes[r, 1], s, None, palette, edges)
        for c, title in enumerate(titles[2:], start=2):
            spec.draw(axes[r, c], s, row.predictions[title], palette, edges)
    if caption:
        fig.suptitle(caption, fontsize=9, y=1 - 0.08 / height)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(out_png, buf.getvalue())
    return titles


def write_sheets(sheets: dict[str, Sheet], folder: Path) -> None:
    """`<folder>/qualitative_<task>.png` for each sheet of `collect`."""
    for task, s in sheets.items():
        sheet(task, s.rows, Path(folder) / f"qualitative_{task}.png", edges=s.edges, caption=s.caption)
