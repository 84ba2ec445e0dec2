import shutil
from pathlib import Path

import pytest
import yaml

from hcmoco.config import ParamsError, load_params, section_digest


@pytest.fixture
def params_dir(tmp_path, repo_root) -> Path:
    shutil.copytree(repo_root / "params", tmp_path / "params")
    return tmp_path / "params"


def edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def test_profiles_resolve_and_overlay(repo_root):
    base = load_params(repo_root / "params/params.yaml", "default")
    smoke = load_params(repo_root / "params/params.yaml", "smoke")
    assert smoke["profile"] == "smoke" and base["profile"] == "default"
    assert smoke["synth"]["resolution"] < base["synth"]["resolution"]
    # keys the overlay does not name keep the base value
    assert smoke["splits"]["val_fraction"] == base["splits"]["val_fraction"]
    assert smoke["splits"]["tasks"] == base["splits"]["tasks"]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["synth"].update(colour=3), "synth.colour: unknown key"),
    (lambda d: d["synth"].update(resolution="big"), "synth.resolution: 'big' is not of type 'integer'"),
    (lambda d: d["splits"].update(fractions=[0.1, 1.5]), "splits.fractions.1: 1.5 is greater than the maximum of 1"),
    (lambda d: d["splits"].update(fractions=[0.0, 0.5]), "splits.fractions.0: 0.0 is less than or equal to the minimum of 0"),
    (lambda d: d["splits"]["tasks"].update(segmentation={"domain": "synth_h36m"}), "splits.tasks.segmentation: unknown key"),
    (lambda d: d["splits"]["tasks"]["parsing"].update(domain="synth_coco"), "splits.tasks.parsing.domain"),
    (lambda d: d["synth"]["domains"]["synth_ntu"].pop("train"), "synth.domains.synth_ntu: 'train' is a required property"),
    (lambda d: d["finetune"].update(fractions=[0.05]), "finetune.fractions.0: 0.05 is not one of splits.fractions"),
    (lambda d: d["finetune"].update(seeds=[0, 7]), "finetune.seeds.1: 7 is not one of splits.seeds"),
    (lambda d: d["finetune"].update(inits=["hcmoco", "moco"]), "finetune.inits.1: 'moco' is not one of the pre-training outputs"),
    (lambda d: d["finetune"]["grids"].update(imagenet={"seeds": [0]}), "finetune.grids.imagenet: not scratch or one of finetune.inits"),
    (lambda d: d["versatility"].update(fraction=0.3), "versatility.fraction: 0.3 is not one of splits.fractions"),
    (lambda d: d["frozen"].update(inits=["hcmoco", "moco"]), "frozen.inits.1: 'moco' is not one of the pre-training outputs"),
    (lambda d: d["frozen"].update(fractions=[0.05]), "frozen.fractions.0: 0.05 is not one of splits.fractions"),
    (lambda d: d["frozen"].update(seeds=[0, 7]), "frozen.seeds.1: 7 is not one of splits.seeds"),
    (lambda d: d["frozen"].update(lr=0), "frozen.lr: 0 is less than or equal to the minimum of 0"),
    (lambda d: d["frozen"].pop("steps"), "frozen: 'steps' is a required property"),
])
def test_schema_errors_are_one_line_naming_the_key(params_dir, mutate, fragment):
    edit(params_dir / "params.yaml", mutate)
    with pytest.raises(ParamsError) as err:
        load_params(params_dir / "params.yaml", "default")
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_overlay_errors_name_the_overlay_file(params_dir):
    edit(params_dir / "profiles/smoke.yaml", lambda d: d["synth"].update(resolutoin=8))
    with pytest.raises(ParamsError, match=r"profiles/smoke.yaml: synth.resolutoin: unknown key"):
        load_params(params_dir / "params.yaml", "smoke")


def test_overlay_must_name_every_section(params_dir):
    edit(params_dir / "profiles/smoke.yaml", lambda d: d.pop("preview"))
    with pytest.raises(ParamsError, match=r"smoke.yaml: preview: missing section"):
        load_params(params_dir / "params.yaml", "smoke")


def test_unknown_profile_lists_known_ones(params_dir):
    with pytest.raises(ParamsError, match=r"unknown profile 'huge'.*known: default, paper, smoke"):
        load_params(params_dir / "params.yaml", "huge")


def test_invalid_yaml_names_file(params_dir):
    (params_dir / "params.yaml").write_text("synth: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML"):
        load_params(params_dir / "params.yaml")


def test_section_digest_tracks_only_named_keys(repo_root):
    params = load_params(repo_root / "params/params.yaml", "default")
    before = section_digest(params, "synth.domains.synth_ntu")
    params["synth"]["domains"]["synth_itop"]["train"] += 1
    assert section_digest(params, "synth.domains.synth_ntu") == before
    params["synth"]["domains"]["synth_ntu"]["train"] += 1
    assert section_digest(params, "synth.domains.synth_ntu") != before


def test_frozen_plan_leaves_out_whole_image_densepose(repo_root):
    from hcmoco.config import frozen_plan, frozen_tasks
    smoke = load_params(repo_root / "params/params.yaml", "smoke")
    assert frozen_tasks(smoke) == list(smoke["splits"]["tasks"])
    assert len(frozen_plan(smoke)) == 4 * 3 * 2 * 1  # tasks x (scratch + inits) x fractions x seeds
    paper = load_params(repo_root / "params/params.yaml", "paper")
    assert frozen_tasks(paper) == ["parsing", "depth_parsing", "pose3d"]  # DensePose R-CNN on whole images
