import json


from hcmoco.processed import splits
from hcmoco.processed.shards import ProcessedSplit
from tests.cli.conftest import REPO


def run_splits(tmp_path, smoke_data, task="parsing", domain="synth_h36m", *extra):
    return splits.main(["--params", str(REPO / "params/params.yaml"), "--profile", "smoke", "--task", task,
                        "--data", str(smoke_data / domain), "--out", str(tmp_path / "splits" / task), *extra])


def test_split_files_nest_and_hold_out_validation_subjects(tmp_path, smoke_data, smoke_params, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_splits(tmp_path, smoke_data) == 0
    out = tmp_path / "splits" / "parsing"
    subjects = ProcessedSplit(smoke_data / "synth_h36m" / "train").field("subject")
    val = json.loads((out / "val.json").read_text())["indices"]
    test = json.loads((out / "test.json").read_text())["indices"]
    assert test == list(range(len(ProcessedSplit(smoke_data / "synth_h36m" / "test"))))
    fractions = sorted(smoke_params["splits"]["fractions"])
    for seed in smoke_params["splits"]["seeds"]:
        chosen = [set(json.loads(splits.fraction_file(out, f, seed).read_text())["indices"]) for f in fractions]
        for small, large in zip(chosen, chosen[1:]):
            assert small < large
        assert set(subjects[sorted(chosen[-1])]).isdisjoint(subjects[val])
        assert len(chosen[-1]) + len(val) == len(subjects)


def test_unknown_task_and_wrong_domain_fail_cleanly(tmp_path, smoke_data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_splits(tmp_path, smoke_data, "segmentation") == 2
    assert "error: --task: unknown task 'segmentation'" in capsys.readouterr().err
    assert run_splits(tmp_path, smoke_data, "pose3d", "synth_h36m") == 2
    assert "domain 'synth_h36m', but task 'pose3d' uses 'synth_itop'" in capsys.readouterr().err
