"""HCMoCo builder: outputs, missing depth, autocast."""
import torch

from hcmoco.models import HCMoCo, HRNetConfig

torch.set_num_threads(1)
EDGES = [(0, 1), (1, 2), (2, 3), (1, 4)]
TINY = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                   modules=(1, 1, 1), blocks=(1, 1, 1))


def _batch(b=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(rgb=torch.randn(b, 3, size, size, generator=g),
                depth=torch.randn(b, 3, size, size, generator=g),
                keypoints=torch.rand(b, 5, 2, generator=g) * 2 - 1,
                visible=torch.rand(b, 5, generator=g) > 0.2,
                has_depth=torch.tensor([True, False, True, False])[:b],
                joint_cells=torch.randint(0, size // 4, (b, 5, 2), generator=g))


def _model(seed=0):
    torch.manual_seed(seed)
    return HCMoCo(TINY, 5, EDGES, embed_dim=16, gcn_hidden=16, gcn_blocks=1)


def test_outputs_and_shapes():
    out = _model()(**_batch(), dense=True)
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"g_rgb": (4, 16), "g_depth": (4, 16), "g_kp": (4, 16), "h_kp": (4, 5, 16),
                      "f_rgb": (4, 16, 8, 8), "f_depth": (4, 16, 8, 8),
                      "j_rgb": (4, 5, 16), "j_depth": (4, 5, 16)}
    for k in ("g_rgb", "g_kp"):
        torch.testing.assert_close(out[k].norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out["g_depth"].norm(dim=-1), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert set(_model()(**_batch())) == {"g_rgb", "g_depth", "g_kp", "h_kp"}  # stage 1


def test_depth_of_samples_without_depth_changes_nothing_even_through_batchnorm():
    model = _model().train()
    batch = _batch()
    out = model(**batch, dense=True)
    batch["depth"][~batch["has_depth"]] = 7.0
    out2 = model(**batch, dense=True)
    for k in out:
        torch.testing.assert_close(out[k], out2[k])


def test_backbones_are_separate_and_exported_by_modality():
    model = _model()
    assert model.backbone("rgb") is model.rgb_encoder
    assert model.backbone("depth") is not model.backbone("rgb")
    assert not set(map(id, model.rgb_encoder.parameters())) & set(
        map(id, model.depth_encoder.parameters()))


def test_bf16_autocast_channels_last_train_step():
    model = _model().to(memory_format=torch.channels_last)
    batch = _batch()
    for k in ("rgb", "depth"):
        batch[k] = batch[k].to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, dense=True)
    assert all(v.dtype == torch.float32 for v in out.values())
    loss = sum(v.sum() for v in out.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.rgb_encoder.parameters())
