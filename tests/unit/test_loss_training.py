"""Each HCMoCo objective falls over 20 optimisation steps on a fixed batch, tiny model."""
import pytest
import torch

from hcmoco.losses import (MemoryBank, dense_contrast_loss, sample_contrast_loss,
                           sample_foreground_cells, sparse_inter_loss, sparse_intra_loss)
from hcmoco.models import HCMoCo, HRNetConfig

torch.set_num_threads(1)
TINY = HRNetConfig(widths=(4, 8, 12, 16), stem_width=8, stage1_planes=4, stage1_blocks=1,
                   modules=(1, 1, 1), blocks=(1, 1, 1))
B, J = 4, 5


def _batch():
    g = torch.Generator().manual_seed(0)
    return dict(rgb=torch.randn(B, 3, 32, 32, generator=g),
                depth=torch.randn(B, 3, 32, 32, generator=g),
                keypoints=torch.rand(B, J, 2, generator=g) * 2 - 1,
                visible=torch.tensor([[1, 1, 1, 0, 1]] * B, dtype=torch.bool),
                has_depth=torch.tensor([True, True, True, False]),
                joint_cells=torch.randint(0, 8, (B, J, 2), generator=g))


def _sample_objective():
    bank = MemoryBank(16, 16, generator=torch.Generator().manual_seed(0))
    index = torch.arange(B)
    neg = bank.sample_negatives(8, B, torch.Generator().manual_seed(1))

    def objective(out, batch):
        g = {"rgb": out["g_rgb"], "depth": out["g_depth"], "keypoints": out["g_kp"]}
        loss = sample_contrast_loss(g, bank.banks(), index, neg, batch["has_depth"])
        return loss, lambda: bank.update(
            index, g, {"depth": batch["has_depth"]})
    return objective


def _dense_objective():
    cells = sample_foreground_cells(torch.ones(B, 8, 8, dtype=torch.bool), 24,
                                    torch.Generator().manual_seed(0))
    return lambda out, batch: (dense_contrast_loss(out["f_rgb"], out["f_depth"], cells,
                                                   batch["has_depth"]), None)


def _intra_objective():
    return lambda out, b: (sparse_intra_loss(out["j_rgb"], out["j_depth"], out["h_kp"],
                                             b["visible"], b["has_depth"]), None)


def _inter_objective():
    return lambda out, b: (sparse_inter_loss(out["j_rgb"], out["j_depth"], b["visible"],
                                             b["has_depth"]), None)


@pytest.mark.parametrize("make", [_sample_objective, _dense_objective, _intra_objective,
                                  _inter_objective])
def test_loss_falls_in_20_steps(make):
    torch.manual_seed(0)
    model = HCMoCo(TINY, J, [(0, 1), (1, 2), (2, 3), (3, 4)], embed_dim=16, gcn_hidden=16,
                   gcn_blocks=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    objective, batch = make(), _batch()
    losses = []
    for _ in range(20):
        loss, after_step = objective(model(**batch, dense=True), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
