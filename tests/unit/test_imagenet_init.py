"""ImageNet init of HRNetV2-W18 from the official classification checkpoint's layout.

The real file cannot be downloaded here; the tests write one in its layout: the backbone under
the official names (HRNet-Image-Classification lib/models/cls_hrnet.py) plus its
classification head, whose keys the converter must drop."""
import pytest
import torch

from hcmoco.errors import HcmocoError
from hcmoco.models import HRNet, HRNetConfig, read_backbone
from hcmoco.models.imagenet import load_imagenet, main
from hcmoco.train.finetune import build_backbone

TINY = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                   modules=(1, 1, 1), blocks=(1, 1, 1))
# Names and shapes as the official HighResolutionNet (cfg w18) builds them: stem, stage-1
# bottlenecks, transitions (a new branch is Sequential(Sequential(conv, bn, relu))), modules
# of branches and fuse layers (downsampling paths: Sequentials of conv, bn[, relu]).
OFFICIAL_W18 = {
    "conv1.weight": (64, 3, 3, 3), "bn2.running_var": (64,), "layer1.3.bn3.weight": (256,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1), "transition1.0.0.weight": (18, 256, 3, 3),
    "transition1.1.0.0.weight": (36, 256, 3, 3), "transition2.2.0.1.bias": (72,),
    "transition3.3.0.0.weight": (144, 72, 3, 3), "stage2.0.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
    "stage3.3.branches.2.3.bn2.weight": (72,), "stage4.2.fuse_layers.3.0.2.1.running_var": (144,),
    "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
}


def head(widths) -> dict:
    """The official classification head's keys (a few of each module, official shapes for W18)."""
    return {"incre_modules.0.0.conv1.weight": torch.randn(32, widths[0], 1, 1),
            "incre_modules.3.0.bn3.num_batches_tracked": torch.tensor(5),
            "downsamp_modules.2.0.weight": torch.randn(1024, 512, 3, 3),
            "final_layer.0.weight": torch.randn(2048, 1024, 1, 1), "final_layer.1.running_mean": torch.randn(2048),
            "classifier.weight": torch.randn(1000, 2048), "classifier.bias": torch.randn(1000)}


def official_file(path, config, edit=None):
    """A checkpoint in the official layout with random backbone values; `edit` alters the dict."""
    torch.manual_seed(1)
    state = {k: (torch.randn(v.shape) if v.is_floating_point() else v + 3)
             for k, v in HRNet(config).state_dict().items()}
    state.update(head(config.widths))
    if edit:
        edit(state)
    torch.save(state, path)
    return state


def test_our_w18_has_the_official_names_and_shapes():
    own = HRNet("w18").state_dict()
    assert {k: tuple(own[k].shape) for k in OFFICIAL_W18 if k in own} == OFFICIAL_W18


def test_converted_w18_loads_into_fine_tuning_unchanged(tmp_path, capsys):
    state = official_file(tmp_path / "hrnetv2_w18_imagenet_pretrained.pth", HRNetConfig.preset("w18"))
    out = tmp_path / "imagenet" / "rgb_backbone.pt"
    assert main(["--weights", str(tmp_path / "hrnetv2_w18_imagenet_pretrained.pth"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dropped 7 classification-head keys (classifier, downsamp_modules, final_layer, incre_modules)" in printed
    sd, config, modality = read_backbone(out)
    assert config == HRNetConfig.preset("w18") and modality == "rgb"
    assert not any(k.startswith(("incre_modules", "classifier")) for k in sd)
    assert all(torch.equal(sd[k], state[k]) for k in sd)
    # what `finetune --init imagenet --backbone-file <out>` does with it (paper profile: w18)
    net = build_backbone("imagenet", out, "w18", "rgb")
    assert torch.equal(net.state_dict()["stage4.2.fuse_layers.3.0.2.1.running_var"],
                       state["stage4.2.fuse_layers.3.0.2.1.running_var"])
    with pytest.raises(HcmocoError, match="holds the rgb backbone"):
        build_backbone("imagenet", out, "w18", "depth")
    assert [p.name for p in out.parent.iterdir()] == ["rgb_backbone.pt"]  # no temporary left


def test_depth_backbone_and_old_checkpoints_without_counters(tmp_path):
    def strip(state):
        for k in [k for k in state if k.endswith("num_batches_tracked")]:
            del state[k]

    official_file(tmp_path / "w.pth", TINY, strip)
    net = HRNet(TINY)
    report = load_imagenet(net, tmp_path / "w.pth")
    assert len(report.dropped) == 6 and all(k.endswith("num_batches_tracked") for k in report.defaulted)
    assert report.defaulted and int(net.state_dict()[report.defaulted[0]]) == 0


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("stage4.0.fuse_layers.3.0.2.1.weight"),
     r"w\.pth: not HRNetV2 ImageNet weights for this backbone; "
     r"1 missing keys: stage4\.0\.fuse_layers\.3\.0\.2\.1\.weight"),
    (lambda s: s.update({"conv1.weight": torch.randn(8, 4, 3, 3)}),
     r"1 shape mismatches: conv1\.weight \(file \(8, 4, 3, 3\), model \(8, 3, 3, 3\)\)"),
    (lambda s: s.update({"stage5.0.weight": torch.randn(2)}), r"1 unexpected keys: stage5\.0\.weight"),
])
def test_a_mismatch_fails_naming_the_file_and_keys_and_loads_nothing(tmp_path, edit, match):
    official_file(tmp_path / "w.pth", TINY, edit)
    torch.manual_seed(0)
    net = HRNet(TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(HcmocoError, match=match) as err:
        load_imagenet(net, tmp_path / "w.pth")
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent.pth'}: ImageNet weights not found\n"
    official_file(tmp_path / "tiny.pth", TINY)  # another HRNet's weights: every W18 shape differs
    assert main(["--weights", str(tmp_path / "tiny.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shape mismatches: " in err and "(" in err and not (tmp_path / "o.pt").exists()


def test_wrapped_and_data_parallel_checkpoints_are_read(tmp_path):
    state = official_file(tmp_path / "w.pth", TINY)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pth")
    net = HRNet(TINY)
    load_imagenet(net, tmp_path / "wrapped.pth")
    assert torch.equal(net.state_dict()["conv1.weight"], state["conv1.weight"])
