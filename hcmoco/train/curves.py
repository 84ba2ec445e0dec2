"""Training curves through dvclive, written once from a run's full history.

Writing at the end (not step by step) makes a resumed run produce the same files as an
uninterrupted one: the history travels in the checkpoint.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from hcmoco.atomic import atomic_write_text


def write_curves(curves: Path, records: list[dict], prefix: str, history: object) -> None:
    """One dvclive TSV per key of `records` (each a dict with a "step"; None values are
    skipped), plus `history` as history.json."""
    from dvclive import Live

    shutil.rmtree(curves, ignore_errors=True)
    with Live(str(curves), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for record in records:
            live.step = record["step"]
            for key, value in record.items():
                if key != "step" and value is not None:
                    live.log_metric(f"{prefix}/{key}", value, plot=True)
            live.next_step()
    atomic_write_text(curves / "history.json", json.dumps(history))
