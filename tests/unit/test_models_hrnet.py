"""HRNetV2 backbone: branch shapes of W18 and the narrow variant, config, autocast."""
import pytest
import torch

from hcmoco.models import HRNET_PRESETS, HRNet, HRNetConfig, count_parameters

torch.set_num_threads(1)


@pytest.mark.parametrize("name,widths", [("w18", (18, 36, 72, 144)), ("narrow", (8, 16, 32, 64))])
def test_branch_shapes(name, widths):
    net = HRNet(name).eval()
    with torch.no_grad():
        feats = net(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(widths, (4, 8, 16, 32))]
    assert net.out_channels == widths


def test_sizes_are_parameters():
    cfg = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                      modules=(1, 2, 1), blocks=(1, 2, 1))
    net = HRNet(cfg)
    assert len(net.stage3) == 2 and len(net.stage3[0].branches[0]) == 2
    assert [f.shape[1] for f in net(torch.randn(2, 3, 32, 32))] == [4, 8, 12, 16]
    assert HRNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        HRNetConfig(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="unknown HRNet preset"):
        HRNet("w99")


def test_w18_has_official_layout_and_size():
    net = HRNet("w18")
    keys = set(net.state_dict())
    # names of the official HRNet code (so its ImageNet weights can load)
    for k in ("conv1.weight", "bn2.running_var", "layer1.3.conv3.weight",
              "layer1.0.downsample.0.weight", "transition1.0.0.weight",
              "transition1.1.0.0.weight", "transition3.3.0.0.weight",
              "stage3.3.branches.2.3.conv2.weight", "stage4.2.fuse_layers.3.0.2.0.weight",
              "stage4.2.fuse_layers.0.3.1.running_mean"):
        assert k in keys, k
    assert 9.4e6 < count_parameters(net) < 9.7e6  # HRNetV2-W18 backbone: about 9.6 M
    assert count_parameters(HRNet("narrow")) < 0.05 * count_parameters(net)


def test_input_size_not_divisible_by_32():
    feats = HRNet("narrow")(torch.randn(2, 3, 72, 40))
    assert [tuple(f.shape[-2:]) for f in feats] == [(18, 10), (9, 5), (5, 3), (3, 2)]


def test_channels_last_and_bf16_autocast_match_fp32():
    torch.manual_seed(0)
    net = HRNet("narrow").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        cl = net_cl(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net_cl(x.to(memory_format=torch.channels_last))
    for r, c, l in zip(ref, cl, low):
        torch.testing.assert_close(c, r, atol=1e-4, rtol=1e-4)
        assert l.dtype == torch.bfloat16
        assert (l.float() - r).abs().mean() < 0.05 * r.abs().mean()


def test_presets_are_distinct_configs():
    assert set(HRNET_PRESETS) >= {"w18", "narrow"}
    assert HRNET_PRESETS["w18"] == HRNetConfig()
