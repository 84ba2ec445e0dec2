import json

import numpy as np
import pytest

from hcmoco.synth import generate
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import DOMAINS


def read_bytes(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_every_domain_has_its_modalities(smoke_data, smoke_params):
    for name, spec in DOMAINS.items():
        for split in ("train", "test"):
            data = ProcessedSplit(smoke_data / name / split)
            assert len(data) == smoke_params["synth"]["domains"][name][split]
            assert set(spec.fields) | {"subject", "cam"} == set(data.fields)
            assert data.index["layout"] == spec.layout and data.index["depth_kind"] == spec.depth_kind
        train = set(ProcessedSplit(smoke_data / name / "train").field("subject").tolist())
        test = set(ProcessedSplit(smoke_data / name / "test").field("subject").tolist())
        assert train.isdisjoint(test)


def test_bytes_do_not_depend_on_worker_count(tmp_path, smoke_data, smoke_params, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = generate.main(["--params", str(smoke_params_file()), "--profile", "smoke", "--domain", "synth_ntu",
                          "--out", "one", "--workers", "1"])
    assert code == 0
    assert read_bytes(tmp_path / "one") == read_bytes(smoke_data / "synth_ntu")  # that one used 2 workers
    assert (tmp_path / "logs" / "one.jsonl").is_file()
    events = [json.loads(line) for line in (tmp_path / "logs" / "one.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["params"]["profile"] == "smoke"
    assert events[-1]["event"] == "done"


def test_a_different_seed_gives_different_data(tmp_path, smoke_params):
    synth = {**smoke_params["synth"], "seed": 1}
    synth["domains"] = {"synth_itop": {"train": 4, "test": 2, "subjects_train": 2, "subjects_test": 1}}
    generate.generate_domain("synth_itop", synth, tmp_path / "itop", workers=1)
    other = {**synth, "seed": 2}
    generate.generate_domain("synth_itop", other, tmp_path / "itop2", workers=1)
    a = ProcessedSplit(tmp_path / "itop" / "train").field("depth")
    b = ProcessedSplit(tmp_path / "itop2" / "train").field("depth")
    assert not np.array_equal(a, b)


def test_unknown_domain_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = generate.main(["--params", str(smoke_params_file()), "--profile", "smoke",
                          "--domain", "synth_coco", "--out", "x"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: --domain: unknown domain 'synth_coco'") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_interrupted_generation_leaves_nothing(tmp_path, smoke_params, monkeypatch):
    import hcmoco.synth as synth

    calls = []

    def fail_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    real = synth.render_batch
    monkeypatch.setattr(synth, "render_batch", fail_on_third_chunk)
    (tmp_path / "mpii").mkdir()
    (tmp_path / "mpii" / "previous").write_text("complete earlier output")
    with pytest.raises(RuntimeError, match="killed"):
        generate.generate_domain("synth_mpii", smoke_params["synth"], tmp_path / "mpii", workers=1)
    # the earlier output is untouched and no temporary directory is left
    assert [p.name for p in tmp_path.iterdir()] == ["mpii"]
    assert [p.name for p in (tmp_path / "mpii").iterdir()] == ["previous"]


def smoke_params_file():
    from tests.cli.conftest import REPO

    return REPO / "params" / "params.yaml"
