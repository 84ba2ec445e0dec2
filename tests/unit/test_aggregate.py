"""The aggregator on hand-made metric files: cells, n/a, mean ± std, reference numbers, formats."""
import csv
import io
import json

import numpy as np
import pytest

from hcmoco.config import finetune_plan, frozen_plan, load_params, versatility_plan
from hcmoco.results import aggregate
from hcmoco.results.collect import finetune_records, versatility_records
from hcmoco.results.stats import cell
from hcmoco.results.summary import ablation_statements, finetune_statements
from hcmoco.results.tables import ablation_table, task_tables, versatility_table


def put(root, task, init, fraction, seed, value, folder="finetune", **details):
    path = root / f"{folder}/{task}/init~{init}/fraction~{fraction:g}/seed~{seed}/metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    metric = {"parsing": "miou", "depth_parsing": "miou", "pose3d": "map_10cm", "densepose": "gps_ap"}[task]
    path.write_text(json.dumps({"task": task, "metric": metric, "test": value, "init": init, "fraction": fraction,
                                "seed": seed, "seconds": 1.0, "test_details": details}))


def ft(root):
    """The fine-tuning records of the runs a test wrote (the aggregator itself reads the plan)."""
    plan = [(p.parts[-5], p.parts[-4][5:], float(p.parts[-3][9:]), int(p.parts[-2][5:]))
            for p in sorted(root.glob("finetune/*/init~*/fraction~*/seed~*/metrics.json"))]
    return finetune_records(root, plan)


def vs(root):
    plan = [(p.parts[-4], p.parts[-3][5:], int(p.parts[-2][5:]))
            for p in sorted(root.glob("versatility/*/init~*/seed~*/metrics.json"))]
    return versatility_records(root, plan)


@pytest.fixture
def results(tmp_path):
    for seed, value in ((0, 0.10), (1, 0.20)):
        put(tmp_path, "parsing", "scratch", 0.1, seed, value)
    put(tmp_path, "parsing", "hcmoco", 0.1, 0, 0.30)
    put(tmp_path, "parsing", "scratch", 1.0, 0, 0.50)
    put(tmp_path, "densepose", "hcmoco", 0.1, 0, 0.0, gpsm_ap=0.01, mean_gps=0.25)
    v = tmp_path / "versatility/crossmodal/init~hcmoco/seed~0/metrics.json"
    v.parent.mkdir(parents=True)
    v.write_text(json.dumps({"experiment": "crossmodal", "init": "hcmoco", "seed": 0,
                             "results": {"rgb->rgb": 0.4, "rgb->depth": 0.2}}))
    return tmp_path


def rows(table):
    return {label: cells for label, cells in table.rows}


def test_cells_are_mean_std_and_runs_or_na(results):
    (parsing, *_), = [task_tables(ft(results), {"parsing": "synth_h36m"})[:1]]
    assert parsing.columns == ["10%", "100%"]
    assert rows(parsing)["scratch (random init)"] == [f"15.0 ± {np.std([10, 20], ddof=1):.1f} (2)", "50.0 ± 0.0 (1)"]
    assert rows(parsing)["HCMoCo"] == ["30.0 ± 0.0 (1)", "n/a"]
    assert rows(parsing)["HCMoCo (paper)"] == ["n/a", "n/a"]  # SynthHuman: no reference applies


def test_reference_numbers_only_where_the_dataset_matches(results):
    parsing = task_tables(ft(results), {"parsing": "h36m"})[0]
    assert rows(parsing)["HCMoCo (paper)"] == ["58.28", "62.50"]
    hc = [n for n in parsing.numbers if n["row"] == "hcmoco" and n["column"] == "10%"][0]
    assert hc["expected"] == 58.28 and hc["ours"] == 30.0 and hc["difference"] == pytest.approx(-28.28)
    scratch = [n for n in parsing.numbers if n["row"] == "scratch"][0]
    assert scratch["expected"] == "n/a" and scratch["difference"] == "n/a"


def test_densepose_reference_only_for_detections_on_whole_images(results):
    put(results, "densepose", "hcmoco", 1.0, 0, 0.5, gpsm_ap=0.4, mean_gps=0.6)
    records = ft(results)
    by_name = lambda dataset: {t.name: t for t in task_tables(records, {"densepose": dataset})}  # noqa: E731
    detection = by_name("densepose_coco_detection")["densepose"]
    assert rows(detection)["HCMoCo (paper)"] == ["n/a", "67.77"]
    assert rows(by_name("densepose_coco_detection")["densepose_gpsm_ap"])["HCMoCo (paper)"] == ["n/a", "n/a"]
    crops = by_name("densepose_coco")["densepose"]  # ground-truth-box crops
    assert rows(crops)["HCMoCo (paper)"] == ["n/a", "n/a"]


def test_densepose_gets_one_table_per_metric(results):
    names = {t.name: t for t in task_tables(ft(results), {})}
    assert {"densepose", "densepose_gpsm_ap", "densepose_mean_gps"} <= set(names)
    assert rows(names["densepose_mean_gps"])["HCMoCo"] == ["25.0 ± 0.0 (1)"]


def test_formats_agree(results):
    table = task_tables(ft(results), {})[0]
    parsed = list(csv.reader(io.StringIO(table.csv())))
    assert parsed[0] == ["init", "10%", "100%"] and parsed[1:] == [[label, *cells] for label, cells in table.rows]
    assert "| HCMoCo | 30.0 ± 0.0 (1) | n/a |" in table.markdown()
    tex = table.latex()
    assert r"30.0 $\pm$ 0.0 (1)" in tex and r"10\%" in tex and "\\begin{tabular}{lcc}" in tex


def test_std_is_the_sample_std():
    values = [0.1, 0.4, 0.25]
    c = cell(values + [None])
    assert c.n == 3 and c.runs == 4
    assert c.std == pytest.approx(np.std(values, ddof=1)) and c.mean == pytest.approx(np.mean(values))
    assert cell([]).text() == "n/a"


def test_versatility_and_ablation_tables(results):
    t = versatility_table(vs(results), "crossmodal")
    assert t.columns == ["RGB→RGB", "RGB→depth"] and rows(t)["HCMoCo"] == ["40.0 ± 0.0 (1)", "20.0 ± 0.0 (1)"]
    assert ablation_table(ft(results)) is None  # fewer than two ablation rows ran
    for init, value in (("sample", 0.2), ("hcmoco_nodense", 0.25)):
        put(results, "parsing", init, 0.1, 0, value)
    t = ablation_table(ft(results))
    assert t.columns == ["parsing 10%"]
    assert rows(t) == {"sample-level (CMC)": ["20.0 ± 0.0 (1)"], "HCMoCo w/o dense": ["25.0 ± 0.0 (1)"],
                       "HCMoCo": ["30.0 ± 0.0 (1)"]}


def test_statements_compare_paired_over_seeds(results):
    lines = finetune_statements(ft(results))
    assert lines == ["- RGB human parsing, 10% labels, mIoU: HCMoCo vs scratch (random init) +20.0 points, "
                     "1 paired seed (no interval): inconclusive.",  # seed 1 has no HCMoCo run
                     "",
                     "HCMoCo > scratch (random init): confirmed in 0, refuted in 0, inconclusive in 1 of 1 settings."]
    put(results, "parsing", "sample", 0.1, 0, 0.2)
    put(results, "parsing", "hcmoco_nodense", 0.1, 0, 0.35)
    put(results, "parsing", "hcmoco_nosparse", 0.1, 0, 0.25)
    text = "\n".join(ablation_statements(ft(results)))
    assert ("- RGB human parsing, 10% labels, mIoU: inconclusive (0 of 4 comparisons confirmed); decided by "
            "HCMoCo vs HCMoCo w/o dense -5.0 points, 1 paired seed (no interval).") in text
    assert "inconclusive in 1 of 1 settings" in text and "spread" not in text


@pytest.fixture
def profile_results(tmp_path, repo_root):
    """Every run the smoke params define, with made-up values: parsing scratch 10% = 15%; frozen
    features: scratch 10%, the others 20%."""
    params = load_params(repo_root / "params/params.yaml", "smoke")
    root = tmp_path / "results"
    for task, init, fraction, seed in finetune_plan(params):
        details = {"gpsm_ap": 0.2, "mean_gps": 0.3} if task == "densepose" else {}
        put(root, task, init, fraction, seed, 0.15 if init == "scratch" else 0.3, **details)
    for task, init, fraction, seed in frozen_plan(params):
        details = {"gpsm_ap": 0.1, "mean_gps": 0.2} if task == "densepose" else {}
        put(root, task, init, fraction, seed, 0.1 if init == "scratch" else 0.2, folder="frozen", **details)
    for experiment, init, seed in versatility_plan(params):
        path = root / f"versatility/{experiment}/init~{init}/seed~{seed}/metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"experiment": experiment, "init": init, "seed": seed, "results": {"rgb->rgb": 0.4}}))
    for run in ["stage1", *params["pretrain"]["variants"]]:
        path = root / f"pretrain/{run}/curves/history.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps([{"step": 1, "loss": 2.0, "sample": 2.0}]))
    return root


def run_aggregate(root, repo_root):
    out = root.parent / "out"
    code = aggregate.main(["--params", str(repo_root / "params/params.yaml"), "--profile", "smoke",
                           "--results", str(root), "--tables", str(out / "tables"), "--figures",
                           str(out / "figures"), "--metrics", str(out / "metrics.json"), "--plots", str(out / "plots")])
    return code, out


def test_cli_writes_every_output(profile_results, tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    code, out = run_aggregate(profile_results, repo_root)
    assert code == 0
    for name in ("parsing", "densepose", "crossmodal"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"tables/{name}.{ext}").is_file()
    assert (out / "figures/fractions_parsing.png").stat().st_size > 5000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["parsing"]["scratch"] == {"10%": 15.0, "100%": 15.0}
    plot = list(csv.DictReader((out / "plots/parsing.csv").open()))
    assert plot[0] == {"fraction_percent": "10.0", "scratch": "15.0", "sample": "30.0", "hcmoco": "30.0",
                       "hcmoco_nodense": "30.0", "hcmoco_nosparse": "30.0"}
    summary = list(csv.DictReader((out / "tables/summary.csv").open()))
    assert all(r["ours"] == "n/a" or float(r["ours"]) >= 0 for r in summary)
    summary_md = (out / "tables/summary.md").read_text()
    assert "HCMoCo vs scratch" in summary_md and "paired seed" in summary_md and "spread" not in summary_md
    comparisons = list(csv.DictReader((out / "tables/comparisons.csv").open()))
    assert list(comparisons[0]) == ["section", "task_or_experiment", "fraction_or_setting", "metric", "a", "b", "n",
                                    "mean_diff", "ci_low", "ci_high", "verdict"]
    assert {r["section"] for r in comparisons} >= {"finetune", "versatility", "frozen"}
    assert "| fine-tuning | RGB human parsing" in (out / "tables/comparisons.md").read_text()


def test_cli_writes_the_frozen_feature_tables(profile_results, tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    code, out = run_aggregate(profile_results, repo_root)
    assert code == 0
    for name in ("frozen_parsing", "frozen_pose3d", "frozen_densepose", "frozen_densepose_mean_gps"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"tables/{name}.{ext}").is_file(), name
    table = (out / "tables/frozen_parsing.md").read_text()
    assert "RGB human parsing, frozen backbone: mIoU (%)" in table and "HCMoCo (paper)" not in table
    assert "| scratch (random init) | 10.0 ± 0.0 (1) | 10.0 ± 0.0 (1) |" in table
    assert (out / "figures/frozen_fractions_parsing.png").stat().st_size > 5000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frozen_parsing"]["hcmoco"] == {"10%": 20.0, "100%": 20.0}
    assert metrics["parsing"]["scratch"] == {"10%": 15.0, "100%": 15.0}  # fine-tuning's entries unchanged
    summary = (out / "tables/summary.md").read_text()
    frozen = summary[summary.index("**Frozen features.**"):]
    assert "24 runs of the frozen-feature protocol" in frozen  # 4 tasks x 3 inits x 2 fractions x 1 seed
    assert "DensePose estimation, frozen backbone: mean GPS" in frozen
    assert "RGB human parsing, 10% labels, mIoU: HCMoCo vs scratch (random init) +10.0 points" in frozen
    comparisons = list(csv.DictReader((out / "tables/comparisons.csv").open()))
    assert {(r["a"], r["b"]) for r in comparisons if r["section"] == "frozen"} == {("hcmoco", "scratch"),
                                                                                  ("hcmoco", "sample")}
    (profile_results / "frozen/pose3d/init~sample/fraction~0.1/seed~0/metrics.json").unlink()
    assert run_aggregate(profile_results, repo_root)[0] == 2  # a planned frozen run is missing


def test_staging_folders_a_kill_left_are_never_read(profile_results, tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    # a grid job killed during its final copy left its staging folder beside the output
    put(profile_results / "stale", "parsing", "scratch", 0.1, 0, 0.9)
    (profile_results / "stale/finetune/parsing").rename(profile_results / "finetune/parsing.tmp-99999")
    assert run_aggregate(profile_results, repo_root)[0] == 0
    table = (tmp_path / "out/tables/parsing.md").read_text()
    assert "| scratch (random init) | 15.0 ± 0.0 (1) | 15.0 ± 0.0 (1) |" in table


@pytest.mark.parametrize("damage", ["missing", "nan", "wrong_seed"])
def test_a_missing_or_broken_planned_run_is_one_error_naming_its_file(profile_results, tmp_path, monkeypatch,
                                                                      repo_root, capsys, damage):
    monkeypatch.chdir(tmp_path)
    path = profile_results / "finetune/pose3d/init~hcmoco/fraction~1/seed~0/metrics.json"
    if damage == "missing":
        path.unlink()
    else:
        m = json.loads(path.read_text())
        m.update({"test": float("nan")} if damage == "nan" else {"seed": 3})
        path.write_text(json.dumps(m))  # NaN is written as the (non-standard) NaN token
    code, out = run_aggregate(profile_results, repo_root)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {path}: ")
    assert not (out / "tables").exists()  # nothing written from a partial set of runs


def test_readme_section_is_replaced_between_the_markers(tmp_path):
    from hcmoco.results.readme import BEGIN, END, main
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold numbers\n{END}\n\n## after\n")
    (tmp_path / "summary.md").write_text("Profile `default`.\n\n### Table\n\n| a |\n")
    assert main(["--summary", str(tmp_path / "summary.md"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and "#### Table" in text and text.endswith(f"{END}\n\n## after\n")
    readme.write_text("no markers")
    assert main(["--summary", str(tmp_path / "summary.md"), "--readme", str(readme)]) == 2


def test_a_metric_equal_in_every_run_gives_way_to_the_next(results):
    from hcmoco.results.summary import informative_metric
    put(results, "densepose", "scratch", 0.1, 0, 0.0, gpsm_ap=0.01, mean_gps=0.05)
    records = ft(results)
    metric, label, note = informative_metric(records, "densepose")
    assert (metric, label) == ("mean_gps", "mean GPS") and "GPS AP is 0.0 in every run" in note
    assert informative_metric(records, "parsing")[:2] == ("miou", "mIoU")
    text = "\n".join(finetune_statements(records))
    assert "DensePose estimation, 10% labels, mean GPS: HCMoCo vs scratch (random init) +20.0 points" in text


def test_a_metric_that_moves_less_than_a_point_gives_way_too(results):
    from hcmoco.results.summary import informative_metric
    put(results, "densepose", "scratch", 0.1, 0, 0.0, gpsm_ap=0.0001, mean_gps=0.05)
    put(results, "densepose", "hcmoco", 0.1, 0, 0.0, gpsm_ap=0.0004, mean_gps=0.25)  # GPSm AP 0.01 vs 0.04 points
    metric, _, note = informative_metric(ft(results), "densepose")
    assert metric == "mean_gps" and "GPS AP is 0.0 in every run" in note


def test_ablation_rows_that_tie_are_inconclusive(results):
    for seed in (1, 2):
        put(results, "parsing", "hcmoco", 0.1, seed, 0.30)
    for init in ("sample", "hcmoco_nodense", "hcmoco_nosparse"):
        for seed in (0, 1, 2):
            put(results, "parsing", init, 0.1, seed, 0.30)
    text = "\n".join(ablation_statements(ft(results)))
    assert "10% labels, mIoU: inconclusive (0 of 4 comparisons confirmed)" in text
    assert "+0.0 points [95% CI +0.0, +0.0], 3 paired seeds" in text
