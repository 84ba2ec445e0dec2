"""Projection heads and joint-feature pooling."""
import torch

from hcmoco.models import DenseHead, GlobalHead, HRNet, KeypointGlobalHead, gather_joint_features

torch.set_num_threads(1)


def _feats(b=2, widths=(18, 36, 72, 144), size=16):
    return [torch.randn(b, c, size >> k, size >> k) for k, c in enumerate(widths)]


def test_global_head_concatenates_pooled_branches():
    head = GlobalHead((18, 36, 72, 144))
    assert head.fc.in_features == 270  # W18, as in the paper
    feats = _feats()
    g = head(feats)
    assert g.shape == (2, 128)
    torch.testing.assert_close(g.norm(dim=1), torch.ones(2))
    pooled = torch.cat([f.mean(dim=(2, 3)) for f in feats], 1)
    torch.testing.assert_close(g, torch.nn.functional.normalize(head.fc(pooled), dim=1))


def test_keypoint_head_ignores_invisible_joints():
    head = KeypointGlobalHead(16, 8)
    joints = torch.randn(2, 5, 16)
    vis = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    g = head(joints, vis)
    assert g.shape == (2, 8)
    torch.testing.assert_close(g.norm(dim=1), torch.ones(2))
    changed = joints.clone()
    changed[~vis] = 100.0
    torch.testing.assert_close(head(changed, vis), g)
    mean0 = joints[0, vis[0]].mean(0)
    torch.testing.assert_close(g[0], torch.nn.functional.normalize(head.fc(mean0), dim=0))
    assert torch.isfinite(head(joints, torch.zeros_like(vis))).all()


def test_dense_head_shape_and_per_pixel_norm():
    head = DenseHead((8, 16, 32, 64))
    f = head(HRNet("narrow")(torch.randn(2, 3, 64, 48)))
    assert f.shape == (2, 128, 16, 12)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2, 16, 12))


def test_gather_joint_features_picks_the_joint_cell():
    dense = torch.randn(2, 4, 5, 6)
    cells = torch.tensor([[[0, 0], [5, 4], [2, 3]], [[1, 2], [9, 9], [-1, 0]]])  # (x, y)
    out = gather_joint_features(dense, cells)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out[0, 1], dense[0, :, 4, 5])
    torch.testing.assert_close(out[0, 2], dense[0, :, 3, 2])
    torch.testing.assert_close(out[1, 0], dense[1, :, 2, 1])
    torch.testing.assert_close(out[1, 1], dense[1, :, 4, 5])  # clamped to the grid
