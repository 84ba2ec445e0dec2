"""Backbone export and strict loading (a silent partial load is the classic bug)."""

import pytest
import torch

from hcmoco.models import (HRNET_CLS_HEAD_PREFIXES, CheckpointMismatchError, HCMoCo, HRNet,
                           HRNetConfig, backbone_state_dict,
                           load_backbone, read_backbone, save_backbone)
from hcmoco.models.checkpoint import CheckpointFileError

TINY = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                   modules=(1, 1, 1), blocks=(1, 1, 1))


def _model():
    torch.manual_seed(0)
    return HCMoCo(TINY, 3, [(0, 1), (1, 2)], embed_dim=8, gcn_hidden=8, gcn_blocks=1)


def test_export_holds_only_the_backbone_of_one_modality(tmp_path):
    model = _model()
    sd = backbone_state_dict(model, "depth")
    assert set(sd) == set(model.depth_encoder.state_dict())
    assert torch.equal(sd["conv1.weight"], model.depth_encoder.conv1.weight)
    assert not torch.equal(sd["conv1.weight"], model.rgb_encoder.conv1.weight)
    save_backbone(tmp_path / "depth.pt", model, "depth")
    loaded, cfg, modality = read_backbone(tmp_path / "depth.pt")
    assert cfg == TINY and modality == "depth"
    net = HRNet(cfg)
    load_backbone(net, loaded)
    net.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(net(x), model.depth_encoder.eval()(x)):
            torch.testing.assert_close(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["depth.pt"]  # no temp file left


def test_missing_key_fails_and_leaves_model_untouched():
    net = HRNet(TINY)
    sd = HRNet(TINY).state_dict()
    del sd["stage4.0.fuse_layers.3.0.0.0.weight"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="1 missing keys: stage4.0.fuse_layers"):
        load_backbone(net, sd)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_unexpected_and_shape_mismatch_fail():
    net = HRNet(TINY)
    sd = HRNet(TINY).state_dict()
    sd["classifier.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match="unexpected keys: classifier.weight"):
        load_backbone(net, sd)
    load_backbone(net, sd, drop_prefixes=HRNET_CLS_HEAD_PREFIXES)  # explicit drop is fine
    bigger = HRNet(HRNetConfig(widths=(4, 8, 12, 20), stem_width=8, stage1_planes=4,
                               stage1_blocks=1, modules=(1, 1, 1), blocks=(1, 1, 1)))
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        load_backbone(net, bigger.state_dict())


def test_files_load_weights_only(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "hcmoco-backbone-v1", "payload": Evil()}, path)
    with pytest.raises(CheckpointFileError, match=f"^{path}: not a backbone file: it holds Python objects") as err:
        read_backbone(path)
    assert "weights_only=False" not in str(err.value) and "pickled code ran" not in capsys.readouterr().out
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFileError, match="not an hcmoco-backbone-v1 file"):
        read_backbone(tmp_path / "other.pt")
