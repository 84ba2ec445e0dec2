"""MemoryBank: init, negative sampling determinism, lookup and the momentum update."""
import torch
import torch.nn.functional as F

from hcmoco.losses import MemoryBank

N, D = 50, 8


def _bank(seed=0):
    return MemoryBank(N, D, generator=torch.Generator().manual_seed(seed))


def test_rows_start_unit_norm_and_seeded():
    bank = _bank()
    for m in ("rgb", "depth", "keypoints"):
        assert bank.bank(m).shape == (N, D)
        torch.testing.assert_close(bank.bank(m).norm(dim=1), torch.ones(N))
    assert torch.equal(bank.rgb, _bank().rgb) and not torch.equal(bank.rgb, _bank(1).rgb)
    assert set(bank.state_dict()) == {"rgb", "depth", "keypoints"}  # saved with checkpoints


def test_negative_sampling_is_deterministic_given_a_generator():
    bank = _bank()
    draw = lambda seed, b=None: bank.sample_negatives(200, b, torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3, 4), draw(3, 4)) and not torch.equal(draw(3, 4), draw(4, 4))
    assert draw(3, 4).shape == (4, 200) and draw(3).shape == (200,)
    idx = draw(5, 10)
    assert idx.min() >= 0 and idx.max() < N
    assert len(idx.unique()) == N  # 2000 uniform draws over 50 rows cover them all


def test_banks_are_the_live_buffers():
    bank = _bank()
    banks = bank.banks()
    assert set(banks) == {"rgb", "depth", "keypoints"}
    assert banks["depth"] is bank.depth
    bank.update(torch.tensor([4]), {"depth": torch.ones(1, D)})
    assert torch.equal(banks["depth"][4], bank.depth[4])


def test_update_formula_after_step_no_grad_and_masking():
    bank = _bank()
    before = {m: bank.bank(m).clone() for m in bank.modalities}
    idx = torch.tensor([3, 17, 42])
    g = {m: F.normalize(torch.randn(3, D), dim=1).requires_grad_() for m in bank.modalities}
    valid = {"depth": torch.tensor([True, False, True])}
    bank.update(idx, g, valid)
    for m in bank.modalities:
        expect = F.normalize(0.5 * before[m][idx] + 0.5 * g[m].detach(), dim=1)
        rows = [0, 2] if m == "depth" else [0, 1, 2]
        torch.testing.assert_close(bank.bank(m)[idx[rows]], expect[rows])
        assert not bank.bank(m).requires_grad
        others = torch.ones(N, dtype=torch.bool)
        others[idx[rows]] = False
        assert torch.equal(bank.bank(m)[others], before[m][others])  # nothing else moved


def test_update_with_repeated_index_uses_first_occurrence():
    bank = _bank()
    before = bank.rgb[5].clone()
    g = F.normalize(torch.randn(3, D), dim=1)
    bank.update(torch.tensor([5, 8, 5]), {"rgb": g})
    torch.testing.assert_close(bank.rgb[5], F.normalize(0.5 * before + 0.5 * g[0], dim=0))
