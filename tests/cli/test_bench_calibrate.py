"""The calibration study on the smoke profile: one row per point, metrics of real runs, cached."""
import json

import yaml

from hcmoco import bench
from tests.cli.conftest import REPO


def test_calibrate_prints_one_row_per_point_and_reuses_finished_runs(tmp_path, capsys):
    points = tmp_path / "points.yaml"
    points.write_text(yaml.safe_dump({"points": {
        "two_steps": {"finetune.min_steps": 2, "finetune.max_steps": 2},
        "four_steps_lr": {"finetune.min_steps": 4, "finetune.max_steps": 4, "finetune.lr": 1.0e-2}}}, sort_keys=False))
    args = ["calibrate", "--params", str(REPO / "params/params.yaml"), "--profile", "smoke", "--points", str(points),
            "--tasks", "parsing", "pose3d", "--work", str(tmp_path / "work"), "--workers", "2",
            "--out", str(tmp_path / "table.md")]
    assert bench.main(args) == 0
    rows = json.loads((tmp_path / "table.json").read_text())
    assert {(r["point"], r["task"], r["steps"]) for r in rows} == {
        ("two_steps", "parsing", 2), ("two_steps", "pose3d", 2), ("four_steps_lr", "parsing", 4),
        ("four_steps_lr", "pose3d", 4)}
    assert all(0 <= r["test"] <= 1 for r in rows)
    table = (tmp_path / "table.md").read_text()
    assert "| two_steps | finetune.min_steps=2, finetune.max_steps=2 |" in table
    assert "parsing mIoU (s)" in table and "pose3d mAP@10cm (s)" in table
    # same points again: every run is read back, none trained anew
    runs = sorted((tmp_path / "work/runs").rglob("metrics.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    capsys.readouterr()
    assert bench.main(args) == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert "two_steps" in capsys.readouterr().out


def test_an_unknown_key_in_a_point_is_one_line(tmp_path, capsys):
    points = tmp_path / "points.yaml"
    points.write_text(yaml.safe_dump({"points": {"bad": {"finetune.max_step": 2}}}))
    code = bench.main(["calibrate", "--params", str(REPO / "params/params.yaml"), "--profile", "smoke",
                       "--points", str(points), "--work", str(tmp_path / "w")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: params: finetune.max_step: missing"
