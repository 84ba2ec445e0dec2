"""Qualitative sheets: one PNG per task from the planned runs' predictions and the processed test
split, rows x columns panels, init titles, the cell drawn, and the errors and skips."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from hcmoco.config import finetune_plan, frozen_plan, load_params, versatility_plan
from hcmoco.synth.generate import generate_domain
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.results import aggregate, qualitative
from hcmoco.results.collect import finetune_records
from hcmoco.tasks import xyz_mm_to_uvd

METRIC = {"parsing": "miou", "depth_parsing": "miou", "pose3d": "map_10cm", "densepose": "gps_ap"}
VALUE = {"scratch": 0.15, "sample": 0.25, "hcmoco": 0.3}


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params/params.yaml", "smoke")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, params):
    """The smoke profile's task domains rendered under <tmp>/data/smoke (as data/<profile>)."""
    root = tmp_path_factory.mktemp("qual") / "data/smoke"
    for spec in params["splits"]["tasks"].values():
        generate_domain(spec["domain"], params["synth"], root / "synth" / spec["domain"], workers=1)
    return root


def fake_predictions(task: str, split: ProcessedSplit, index: np.ndarray) -> dict:
    """Arrays shaped as hcmoco.train.task_eval.predict writes them (here: the ground truth, shifted)."""
    s = split.take(index)
    if task in ("parsing", "depth_parsing"):
        return {"parsing": np.roll(s["parsing"], 2, axis=-1).astype(np.uint8)}
    if task == "densepose":
        return {"iuv": s["iuv"]}
    xy, _ = xyz_mm_to_uvd(s["kp3d"], s["cam"])
    return {"kp3d": s["kp3d"].astype(np.float32), "kp2d": (xy + 1.5).astype(np.float32)}


@pytest.fixture
def results(tmp_path, params, data_root):
    """Every run the smoke params define (metrics and predictions), plus what the aggregator
    reads besides; the working directory is the data's parent, so data/smoke is found."""
    root = tmp_path / "results"
    for task, init, fraction, seed in finetune_plan(params):
        cell = root / f"finetune/{task}/init~{init}/fraction~{fraction:g}/seed~{seed}"
        cell.mkdir(parents=True)
        details = {"gpsm_ap": 0.2, "mean_gps": 0.3} if task == "densepose" else {}
        cell.joinpath("metrics.json").write_text(json.dumps({
            "task": task, "metric": METRIC[task], "test": VALUE.get(init, 0.2) + fraction / 10, "init": init,
            "fraction": fraction, "seed": seed, "test_details": details}))
        split = ProcessedSplit(data_root / "synth" / params["splits"]["tasks"][task]["domain"] / "test")
        index = np.arange(4)
        buf = io.BytesIO()
        np.savez_compressed(buf, index=index, **fake_predictions(task, split, index))
        cell.joinpath("predictions.npz").write_bytes(buf.getvalue())
    for task, init, fraction, seed in frozen_plan(params):  # the frozen protocol's runs: no predictions
        cell = root / f"frozen/{task}/init~{init}/fraction~{fraction:g}/seed~{seed}"
        cell.mkdir(parents=True)
        cell.joinpath("metrics.json").write_text(json.dumps({
            "task": task, "metric": METRIC[task], "test": 0.1, "init": init, "fraction": fraction, "seed": seed,
            "test_details": {"gpsm_ap": 0.2, "mean_gps": 0.3} if task == "densepose" else {}}))
    for experiment, init, seed in versatility_plan(params):
        path = root / f"versatility/{experiment}/init~{init}/seed~{seed}/metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"experiment": experiment, "init": init, "seed": seed,
                                    "results": {"rgb->rgb": 0.4}}))
    for run in ["stage1", *params["pretrain"]["variants"]]:
        path = root / f"pretrain/{run}/curves/history.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps([{"step": 1, "loss": 2.0}]))
    return root


def run_aggregate(root, repo_root, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    out = root.parent / "out"
    code = aggregate.main(["--params", str(repo_root / "params/params.yaml"), "--profile", "smoke",
                           "--results", str(root), "--tables", str(out / "tables"), "--figures",
                           str(out / "figures"), "--metrics", str(out / "metrics.json"), "--plots", str(out / "plots")])
    return code, out


def test_aggregate_draws_one_sheet_per_task_of_rows_x_columns_panels(results, data_root, repo_root, monkeypatch):
    code, out = run_aggregate(results, repo_root, data_root.parents[1], monkeypatch)
    assert code == 0
    for task in ("parsing", "depth_parsing", "pose3d", "densepose"):
        image = Image.open(out / f"figures/qualitative_{task}.png")
        rows, columns = 4, 2 + 3  # 4 test samples; input, ground truth, scratch, sample-level, HCMoCo
        assert image.size == (round(qualitative.PANEL * columns * qualitative.DPI),
                              round((qualitative.PANEL * rows + qualitative.HEADER) * qualitative.DPI))
        pixels = np.asarray(image.convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # drawn, not blank
    assert (out / "figures/fractions_parsing.png").is_file()


def test_columns_name_the_inits_and_the_smallest_shared_fraction(results, data_root, params, tmp_path):
    records = finetune_records(results, finetune_plan(params))
    sheets = qualitative.collect(params, results, records, data_root)
    assert set(sheets) == {"parsing", "depth_parsing", "pose3d", "densepose"}
    parsing = sheets["parsing"]
    assert [r.index for r in parsing.rows] == [0, 1, 2, 3] and "10% labels, seed 0" in parsing.caption
    titles = qualitative.sheet("parsing", parsing.rows, tmp_path / "p.png", caption=parsing.caption)
    assert titles == ["input", "ground truth", "scratch (random init)\nmIoU 16.0%", "sample-level (CMC)\nmIoU 26.0%",
                      "HCMoCo\nmIoU 31.0%"]  # fraction 0.1: value + 0.01
    pose = qualitative.sheet("pose3d", sheets["pose3d"].rows, tmp_path / "k.png", edges=sheets["pose3d"].edges)
    assert pose[2].startswith("scratch (random init)\nmAP@10cm ")
    row = sheets["depth_parsing"].rows[0]
    assert row.predictions[titles[2]]["parsing"].shape == row.sample["parsing"].shape


def test_cell_is_the_smallest_fraction_all_three_share(params):
    assert qualitative.pick_cell(params, "parsing") == (["scratch", "sample", "hcmoco"], 0.1, 0)
    ft = params["finetune"]
    other = {**params, "finetune": {**ft, "fractions": [0.01, 0.1, 1.0], "seeds": [0, 1],
                                    "grids": {"sample": {"fractions": [0.1, 1.0], "seeds": [1]}}}}
    assert qualitative.pick_cell(other, "parsing") == (["scratch", "sample", "hcmoco"], 0.1, 1)
    none = {**params, "finetune": {**ft, "grids": {"sample": {"fractions": [2.0]}}}}
    assert qualitative.pick_cell(none, "parsing") is None


def test_a_missing_predictions_file_is_one_error_naming_it(results, data_root, repo_root, monkeypatch, capsys):
    path = results / "finetune/pose3d/init~sample/fraction~0.1/seed~0/predictions.npz"
    path.unlink()
    code, out = run_aggregate(results, repo_root, data_root.parents[1], monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {path}: expected predictions missing (the params define the run; "
                                 f"re-run its rule)"]
    assert not (out / "tables").exists() and not (out / "figures").exists()  # nothing written


def test_a_broken_predictions_file_names_it(results, data_root, params):
    path = results / "finetune/parsing/init~hcmoco/fraction~0.1/seed~0/predictions.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(Exception, match=f"{path}: unreadable predictions file"):
        qualitative.collect(params, results, [], data_root)
    np.savez(path, index=np.arange(4))  # np.savez keeps the name: no parsing array
    with pytest.raises(Exception, match=f"{path}: no 'parsing' array"):
        qualitative.collect(params, results, [], data_root)


def test_without_the_data_the_sheets_are_skipped_with_a_note(results, repo_root, tmp_path, monkeypatch, capsys):
    code, out = run_aggregate(results, repo_root, tmp_path, monkeypatch)  # no data/smoke under tmp_path
    assert code == 0 and not list((out / "figures").glob("qualitative_*.png"))
    assert "the qualitative sheet of parsing is skipped" in capsys.readouterr().out
