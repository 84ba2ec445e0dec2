"""Bad inputs a user can hand the pipeline: each is one error line naming the file or the params
key at fault (exit code 2 from a CLI), and leaves no partial output behind."""
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hcmoco.atomic import atomic_directory, atomic_write_bytes
from hcmoco.config import ParamsError, check_bank_size, load_params
from hcmoco.synth.generate import generate_domain
from hcmoco.processed.keypoints import COMMON_JOINTS
from hcmoco.processed.shards import FormatError, ProcessedSplit
from hcmoco.processed.splits import load_split, write_splits
from hcmoco.errors import HcmocoError
from hcmoco.models import HRNet, HRNetConfig
from hcmoco.models import checkpoint
from hcmoco.models.checkpoint import CheckpointFileError, load_model_file, read_backbone, write_backbone
from hcmoco.models.imagenet import main as imagenet_main
from hcmoco.train import finetune, pretrain

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params/params.yaml"
TINY = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                   modules=(1, 1, 1), blocks=(1, 1, 1))


def error_line(capsys) -> str:
    """The CLI's stderr, checked to be exactly one `error:` line; returns the message."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err[len("error: "):-1]


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Three tiny rendered domains (pre-training sources and the parsing task's) and the parsing
    splits, written by the package itself."""
    root = tmp_path_factory.mktemp("tiny")
    params = load_params(PARAMS, "smoke")
    sizes = {"train": 8, "test": 4, "subjects_train": 2, "subjects_test": 1}
    synth = {**params["synth"], "domains": {"synth_ntu": sizes, "synth_mpii": sizes,
                                            "synth_h36m": {**sizes, "train": 12, "subjects_train": 3}}}
    for domain in synth["domains"]:
        generate_domain(domain, synth, root / domain, workers=1)
    write_splits("parsing", "synth_h36m", root / "synth_h36m", params["splits"], root / "splits")
    return {"root": root, "params": params}


def copy_domain(tiny, tmp_path, name="synth_h36m") -> Path:
    return Path(shutil.copytree(tiny["root"] / name, tmp_path / name))


def run_finetune(tiny, tmp_path, monkeypatch, data=None, splits=None, init="scratch", backbone=None) -> int:
    monkeypatch.chdir(tmp_path)
    argv = ["--params", str(PARAMS), "--profile", "smoke", "--task", "parsing", "--init", init,
            "--fraction", "1.0", "--seed", "0", "--data", str(data or tiny["root"] / "synth_h36m"),
            "--splits", str(splits or tiny["root"] / "splits"), "--out", "out/metrics.json"]
    return finetune.main(argv + (["--backbone-file", str(backbone)] if backbone else []))


def run_stage2(tiny, tmp_path, monkeypatch, init: Path, params: Path = PARAMS) -> int:
    monkeypatch.chdir(tmp_path)
    return pretrain.main(["--params", str(params), "--profile", "smoke", "--stage", "2", "--variant", "hcmoco",
                          "--init", str(init), "--data", str(tiny["root"] / "synth_ntu"),
                          str(tiny["root"] / "synth_mpii"), "--out", str(tmp_path / "stage2")])


# 1. backbone files -------------------------------------------------------------------------------

def test_an_empty_backbone_file_is_named(tiny, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "rgb_backbone.pt"
    empty.touch()
    assert run_finetune(tiny, tmp_path, monkeypatch, init="hcmoco", backbone=empty) == 2
    assert error_line(capsys) == f"{empty}: empty file, not a backbone file (an interrupted write or copy?)"
    assert not (tmp_path / "out").exists()  # only the run log, under logs/


@pytest.mark.parametrize("payload, held", [([1, 2], "a list"), ({"format": "other"}, "format 'other'")])
def test_a_backbone_file_of_another_content_is_named(tmp_path, payload, held):
    path = tmp_path / "b.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointFileError) as err:
        read_backbone(path)
    assert str(err.value) == f"{path}: not an hcmoco-backbone-v1 file (holds {held})"


def test_a_backbone_file_with_a_broken_config_is_named(tmp_path):
    path = tmp_path / "b.pt"
    torch.save({"format": checkpoint.FORMAT, "modality": "rgb", "config": {"depth": 3}, "state_dict": {}}, path)
    with pytest.raises(CheckpointFileError, match=f"^{path}: config: not an HRNet config \\(TypeError"):
        read_backbone(path)


# 2. the stage-2 --init folder --------------------------------------------------------------------

def test_a_missing_stage1_model_is_named(tiny, tmp_path, monkeypatch, capsys):
    (tmp_path / "stage1").mkdir()
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1") == 2
    assert error_line(capsys) == f"{tmp_path / 'stage1/model.pt'}: pre-training model file not found"


def test_an_empty_stage1_model_is_named(tiny, tmp_path, monkeypatch, capsys):
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1/model.pt").touch()
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1") == 2
    assert error_line(capsys).startswith(f"{tmp_path / 'stage1/model.pt'}: empty file, not a pre-training model")
    assert not (tmp_path / "stage2").exists()


def test_a_stage1_model_of_other_shapes_is_named_and_nothing_is_written(tiny, tmp_path, monkeypatch, capsys):
    cfg = tiny["params"]["pretrain"]
    other = pretrain.build_model({**cfg, "embed_dim": cfg["embed_dim"] // 2}, len(COMMON_JOINTS))
    (tmp_path / "stage1").mkdir()
    torch.save({"model": other.state_dict(), "bank": {}}, tmp_path / "stage1/model.pt")
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1") == 2
    message = error_line(capsys)
    assert message.startswith(f"{tmp_path / 'stage1/model.pt'}: model does not match this HCMoCo")
    assert "shape mismatches: " in message and "missing keys" not in message
    assert not (tmp_path / "stage2").exists()


def test_a_stage1_model_with_other_keys_is_named(tiny, tmp_path, monkeypatch, capsys):
    (tmp_path / "stage1").mkdir()
    torch.save({"model": {"encoder.weight": torch.zeros(2)}, "bank": {}}, tmp_path / "stage1/model.pt")
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1") == 2
    message = error_line(capsys)
    assert message.startswith(f"{tmp_path / 'stage1/model.pt'}: model does not match this HCMoCo")
    assert "missing keys: " in message and "1 unexpected keys: encoder.weight" in message


def test_a_model_file_without_a_state_dict_is_named(tmp_path):
    torch.save({"bank": {}}, tmp_path / "model.pt")
    with pytest.raises(CheckpointFileError, match=f"^{tmp_path / 'model.pt'}: model: missing or not a state dict"):
        load_model_file(tmp_path / "model.pt")


# 3. files that need more than the weights-only unpickler -----------------------------------------

def test_a_stage1_model_with_pickled_code_is_refused_in_our_words(tiny, tmp_path, monkeypatch, capsys):
    (tmp_path / "stage1").mkdir()
    torch.save({"model": {}, "bank": {}, "extra": Evil()}, tmp_path / "stage1/model.pt")
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1") == 2
    assert error_line(capsys) == (f"{tmp_path / 'stage1/model.pt'}: not a pre-training model file: it holds "
                                  "Python objects other than tensors and plain containers, which are not "
                                  "unpickled (weights only)")


def test_imagenet_weights_with_pickled_code_are_refused_in_our_words(tmp_path, capsys):
    torch.save({"state_dict": Evil()}, tmp_path / "w.pth")
    assert imagenet_main(["--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    message = error_line(capsys)
    assert message.startswith(f"{tmp_path / 'w.pth'}: not an ImageNet weights file: it holds Python objects")
    assert "weights_only" not in message.replace("(weights only)", "") and not (tmp_path / "o.pt").exists()


# 4-5. processed data -----------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_shard_is_named_when_the_split_is_opened(tiny, tmp_path, keep):
    data = copy_domain(tiny, tmp_path)
    shard = data / "train/rgb-00000.npy"
    shard.write_bytes(shard.read_bytes()[:int(shard.stat().st_size * keep)])
    with pytest.raises(FormatError) as err:
        ProcessedSplit(data / "train")
    assert str(err.value).startswith(f"{shard}: ")
    assert ("truncated or corrupted .npy shard (mmap length is greater than file size)" if keep
            else "not a .npy array (empty file)") in str(err.value)


def test_a_truncated_shard_stops_fine_tuning_naming_it(tiny, tmp_path, monkeypatch, capsys):
    data = copy_domain(tiny, tmp_path)
    shard = data / "test/parsing-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-7])
    assert run_finetune(tiny, tmp_path, monkeypatch, data=data) == 2
    assert error_line(capsys).startswith(f"{shard}: truncated or corrupted .npy shard")


def test_an_index_without_fields_names_the_file_and_the_key(tiny, tmp_path):
    data = copy_domain(tiny, tmp_path)
    index = json.loads((data / "train/index.json").read_text())
    del index["fields"]
    (data / "train/index.json").write_text(json.dumps(index))
    with pytest.raises(FormatError) as err:
        ProcessedSplit(data / "train")
    assert str(err.value).startswith(f"{data / 'train/index.json'}: fields: missing")


# 6-7. split files --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fault", [("{\"indices\": [1, 2", "not valid JSON"),
                                         ("{\"split\": \"val\"}", "indices: missing"),
                                         ("[1, 2]", "indices: missing"),
                                         ("{\"indices\": [1, \"2\"]}", "indices: not a list of integers")])
def test_a_malformed_split_file_is_named(tmp_path, text, fault):
    (tmp_path / "val.json").write_text(text)
    with pytest.raises(HcmocoError) as err:
        load_split(tmp_path / "val.json")
    assert str(err.value).startswith(f"{tmp_path / 'val.json'}: {fault}")


@pytest.mark.parametrize("split_file, bad", [("val.json", -1), ("test.json", 4), ("fraction~1/seed~0.json", 12)])
def test_an_index_outside_the_data_stops_fine_tuning_before_training(tiny, tmp_path, monkeypatch, capsys,
                                                                     split_file, bad):
    splits = Path(shutil.copytree(tiny["root"] / "splits", tmp_path / "splits"))
    record = json.loads((splits / split_file).read_text())
    record["indices"].append(bad)
    (splits / split_file).write_text(json.dumps(record))
    assert run_finetune(tiny, tmp_path, monkeypatch, splits=splits) == 2
    data = tiny["root"] / "synth_h36m" / ("test" if split_file == "test.json" else "train")
    size = 4 if split_file == "test.json" else 12
    assert error_line(capsys) == (f"{splits / split_file}: indices: {bad} is outside the {size} samples of {data} "
                                  "(a split made for other data? write the splits again)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "checkpoints").exists()


# 8-10. params ------------------------------------------------------------------------------------

@pytest.fixture
def params_dir(tmp_path) -> Path:
    shutil.copytree(REPO / "params", tmp_path / "params")
    return tmp_path / "params"


def test_a_duplicate_key_names_the_file_line_and_key(params_dir):
    text = (params_dir / "params.yaml").read_text()
    lines = text.splitlines()
    at = lines.index("  lr: 1.0e-3")  # pretrain.lr
    lines.insert(at + 1, "  lr: 5.0e-3")
    (params_dir / "params.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as err:
        load_params(params_dir / "params.yaml", "smoke")
    assert str(err.value) == (f"{params_dir / 'params.yaml'}: line {at + 2}: pretrain.lr: duplicate key "
                              f"(first given on line {at + 1})")


def test_a_malformed_params_file_names_the_line_and_column(params_dir):
    (params_dir / "profiles/smoke.yaml").write_text("synth:\n  resolution: 32\n\tshard_size: 16\n")
    with pytest.raises(ParamsError) as err:
        load_params(params_dir / "params.yaml", "smoke")
    assert str(err.value).startswith(f"{params_dir / 'profiles/smoke.yaml'}: not valid YAML at line 3, column 1: "
                                     "found character '\\t' that cannot start any token")


def edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def test_min_steps_above_max_steps_is_a_params_error(params_dir):
    edit(params_dir / "profiles/smoke.yaml", lambda d: d["finetune"].update(min_steps=5, max_steps=4))
    with pytest.raises(ParamsError) as err:
        load_params(params_dir / "params.yaml", "smoke")
    assert str(err.value).endswith("finetune.min_steps: 5 is above finetune.max_steps 4")


def test_negatives_beyond_the_rendered_bank_is_a_params_error(params_dir):
    edit(params_dir / "profiles/smoke.yaml", lambda d: d["pretrain"].update(sample_contrast="bank", negatives=96))
    with pytest.raises(ParamsError) as err:
        load_params(params_dir / "params.yaml", "smoke")
    assert str(err.value).endswith("pretrain.negatives: 96 must be below the memory bank size 96 (training "
                                   "samples of pretrain.sources: synth_ntu 48 + synth_mpii 48)")


def test_negatives_beyond_the_data_stop_pretraining_before_a_model_is_built(tiny, params_dir, tmp_path,
                                                                            monkeypatch, capsys):
    edit(params_dir / "profiles/smoke.yaml", lambda d: d["pretrain"].update(sample_contrast="bank"))
    monkeypatch.setattr(pretrain, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    (tmp_path / "stage1").mkdir()
    assert run_stage2(tiny, tmp_path, monkeypatch, tmp_path / "stage1", params_dir / "params.yaml") == 2
    ntu, mpii = tiny["root"] / "synth_ntu", tiny["root"] / "synth_mpii"
    assert error_line(capsys) == (f"pretrain.negatives: 32 must be below the memory bank size 16 (training "
                                  f"samples of --data: {ntu} 8 + {mpii} 8)")
    check_bank_size({"sample_contrast": "bank", "negatives": 15}, [ntu, mpii])  # below: fine


# 11. a full disk ---------------------------------------------------------------------------------

def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_a_file_names_it_and_leaves_nothing(tmp_path, monkeypatch):
    def half_then_full(self, data):
        with open(self, "wb") as fh:
            fh.write(bytes(data)[:3])
        no_space()

    (tmp_path / "out.json").write_text("previous")
    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(HcmocoError) as err:
        atomic_write_bytes(tmp_path / "out.json", b"new content")
    assert str(err.value) == (f"{tmp_path / 'out.json'}: not written: no space left on device (nothing partial was "
                              "left; free space and run again)")
    assert os.listdir(tmp_path) == ["out.json"] and (tmp_path / "out.json").read_text() == "previous"


def test_a_full_disk_while_writing_a_directory_names_it_and_leaves_nothing(tmp_path):
    with pytest.raises(HcmocoError, match=f"^{tmp_path / 'run'}: not written: no space left on device"):
        with atomic_directory(tmp_path / "run") as tmp:
            (tmp / "a.txt").write_text("a")
            no_space()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["torch.save", "write_bytes"])
def test_a_full_disk_while_writing_a_backbone_names_it_and_leaves_nothing(tmp_path, monkeypatch, where):
    if where == "torch.save":
        monkeypatch.setattr(torch, "save", no_space)
    else:
        monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(HcmocoError, match=f"^{tmp_path / 'rgb_backbone.pt'}: not written: no space left"):
        write_backbone(tmp_path / "rgb_backbone.pt", HRNet(TINY), "rgb")
    assert os.listdir(tmp_path) == []


def test_other_os_errors_are_not_reported_as_a_full_disk(tmp_path, monkeypatch):
    def denied(*args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(PermissionError):
        atomic_write_bytes(tmp_path / "x", b"x")
    assert os.listdir(tmp_path) == []
