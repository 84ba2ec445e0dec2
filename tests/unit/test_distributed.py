"""Multi-process pre-training pieces: the row split, global BatchNorm and one training step on
two gloo processes against the single-process step on the same global batch."""
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch import nn

from hcmoco.config import ParamsError
from hcmoco.errors import HcmocoError
from hcmoco.train.distributed import Dist, GlobalBatchNorm, data_parallel, to_global_batchnorm

B, RES, JOINTS, BANK = 8, 32, 14, 64
CFG = {"backbone": "narrow", "embed_dim": 128, "tau": 0.07, "negatives": 16, "dense_cells": 16}
STAGE2 = {"dense": 1.0, "sparse_intra": 1.0, "sparse_inter": 1.0}


def test_rows_split_the_global_batch_in_rank_order():
    assert [Dist(r, 4).rows(8) for r in range(4)] == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    assert Dist().rows(7) == slice(0, 7)
    x = torch.arange(6)
    assert torch.equal(Dist(1, 2).local(x), torch.tensor([3, 4, 5])) and Dist().local(x) is x
    with pytest.raises(ParamsError, match="pretrain.batch_size: 9 .* not divisible by the 2 processes"):
        Dist(0, 2).rows(9)


def test_process_place_comes_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Dist.from_env() == Dist(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(HcmocoError, match="RANK 2 / WORLD_SIZE 2"):
        Dist.from_env()


def test_global_batchnorm_is_batchnorm_outside_a_process_group():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net = to_global_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    net.load_state_dict(ref.state_dict())
    assert isinstance(net[1], GlobalBatchNorm)
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(net(x), ref(x)) and torch.equal(net[1].running_var, ref[1].running_var)


def _batch(depth_rows: tuple[int, ...]) -> dict:
    """A global batch whose rows `depth_rows` carry depth (the paired source)."""
    gen = torch.Generator().manual_seed(3)
    has_depth = torch.zeros(B, dtype=torch.bool).index_fill(0, torch.tensor(depth_rows), True)
    foreground = torch.rand(B, RES // 4, RES // 4, generator=gen) < 0.6
    return {"rgb": torch.randn(B, 3, RES, RES, generator=gen),
            "depth": torch.randn(B, 3, RES, RES, generator=gen) * has_depth.view(-1, 1, 1, 1),
            "keypoints": torch.rand(B, JOINTS, 2, generator=gen) * 2 - 1,
            "visible": torch.rand(B, JOINTS, generator=gen) < 0.8, "has_depth": has_depth,
            "joint_cells": torch.randint(RES // 4, (B, JOINTS, 2), generator=gen),
            "foreground": foreground & has_depth.view(-1, 1, 1),
            "index": torch.randperm(BANK, generator=gen)[:B]}


def _step(dist: Dist, weights: dict, contrast: str, depth_rows: tuple[int, ...]) -> dict:
    """One step of `weights` on this process's rows; returns the loss terms, the averaged
    gradients and the updated bank (identical in every process)."""
    from hcmoco.losses import MemoryBank
    from hcmoco.models import HCMoCo, build_model
    from hcmoco.train.distributed import ShardedHCMoCo
    from hcmoco.train.pretrain import step_losses

    torch.manual_seed(0)
    model = build_model(CFG, JOINTS, ShardedHCMoCo if dist.enabled else HCMoCo)
    bank = None
    if contrast == "bank":
        bank = MemoryBank(BANK, CFG["embed_dim"], generator=torch.Generator().manual_seed(1))
    net = data_parallel(model, dist, torch.device("cpu"))
    net.train()
    batch = {k: v[dist.rows(B)] for k, v in _batch(depth_rows).items()}
    terms, whole = step_losses(net, bank, batch, weights, CFG, torch.Generator().manual_seed(2), dist)
    total = terms["sample"] + sum(weights[k] * v for k, v in terms.items() if k != "sample")
    (total * dist.world_size).backward()
    if bank is not None:
        bank.update(whole["index"], whole["g"], {"depth": whole["has_depth"]})
    return {"terms": {k: v.item() for k, v in terms.items()},
            "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
            "running": {k: v.clone() for k, v in model.state_dict().items() if "running" in k},
            "bank": bank_rows(bank)}


def bank_rows(bank) -> dict:
    return {} if bank is None else {k: v.clone() for k, v in bank.state_dict().items()}


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    results = {}
    # global BatchNorm: uneven and empty shares against BatchNorm on the whole batch
    for name, split in (("bn_uneven", (0, 5, 8)), ("bn_empty", (0, 8, 8))):
        torch.manual_seed(0)
        x = torch.randn(8, 3, 4, 4)
        ref = nn.BatchNorm2d(3)
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-1, 1)
        bn = to_global_batchnorm(nn.BatchNorm2d(3))
        bn.load_state_dict(ref.state_dict())
        mine = x[split[rank]:split[rank + 1]].requires_grad_()
        w = torch.linspace(-1, 2, x.numel()).view_as(x)
        (bn(mine) * w[split[rank]:split[rank + 1]]).sum().backward()
        grads = torch.cat([bn.weight.grad, bn.bias.grad])
        tdist.all_reduce(grads)
        inputs = [torch.zeros(8, 3, 4, 4) for _ in range(2)]
        tdist.all_gather(inputs, torch.zeros(8, 3, 4, 4).index_copy(
            0, torch.arange(split[rank], split[rank + 1]), mine.grad))
        full = x.clone().requires_grad_()
        (ref(full) * w).sum().backward()
        pairs = ((grads, torch.cat([ref.weight.grad, ref.bias.grad])), (inputs[0] + inputs[1], full.grad),
                 (bn.running_var, ref.running_var), (bn.running_mean, ref.running_mean))
        results[name] = max(((a - b).abs().max() / b.abs().max()).item() for a, b in pairs)
    # stage 1: the second process holds no depth sample (the paired source fills rows 0-3);
    # stage 2: both hold some, in unequal numbers
    for name, weights, contrast, depth_rows in (("stage1_batch", dict.fromkeys(STAGE2, 0.0), "batch", (0, 1, 2, 3)),
                                                ("stage2_bank", STAGE2, "bank", (0, 1, 2, 5))):
        got = _step(Dist(rank, 2), weights, contrast, depth_rows)
        if rank == 0:  # the single-process step on the whole batch
            results[name] = {"two": got, "one": _step(Dist(), weights, contrast, depth_rows)}
    if rank == 0:
        torch.save(results, out)
    tdist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    """Both processes forked from this one: DDP imports torch._dynamo, which costs each freshly
    spawned process seconds; imported once here, the forks inherit it."""
    import torch._dynamo  # noqa: F401

    tmp = tmp_path_factory.mktemp("dist")
    mp.start_processes(_worker, args=(str(tmp / "store"), str(tmp / "out.pt")), nprocs=2, start_method="fork")
    return torch.load(tmp / "out.pt", weights_only=True)


@pytest.mark.parametrize("case", ["bn_uneven", "bn_empty"])
def test_global_batchnorm_matches_batchnorm_on_the_whole_batch(two_processes, case):
    assert two_processes[case] < 1e-5  # relative: input and parameter gradients, running stats


def _relative(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    num = sum(((a[k] - b[k]).double() ** 2).sum() for k in a)
    return float((num / sum((b[k].double() ** 2).sum() for k in b)).sqrt())


@pytest.mark.parametrize("case", ["stage1_batch", "stage2_bank"])
def test_two_processes_take_the_single_process_step(two_processes, case):
    """Same loss terms, gradients, running statistics and bank update as one process on the
    whole batch. Tolerances: fp32 sums in another order differ by ~1e-7 relative (measured: loss
    terms <= 1e-7, gradients ~3e-5, running stats ~1e-6); the narrow HRNet's last branch
    normalises a few depth samples at 1x1 resolution, which amplifies rounding in the gradient
    (up to ~1e-4 measured on rendered data, as much as changing the thread count does)."""
    one, two = two_processes[case]["one"], two_processes[case]["two"]
    assert one["terms"].keys() == two["terms"].keys()
    for k, v in one["terms"].items():
        assert two["terms"][k] == pytest.approx(v, rel=1e-5), k
    assert _relative(two["grads"], one["grads"]) < 1e-3
    assert _relative(two["running"], one["running"]) < 1e-4
    assert one["bank"].keys() == two["bank"].keys()
    assert all(torch.allclose(one["bank"][k], two["bank"][k], atol=1e-5) for k in one["bank"])
