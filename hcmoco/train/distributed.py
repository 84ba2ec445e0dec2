"""Multi-process pre-training with torch.distributed: one process per device, launched by torchrun.

    torchrun --nproc-per-node 4 -m hcmoco.train.pretrain --profile paper --stage 1 --data ... --out ...

`pretrain.batch_size` stays the global batch. Process r of W takes rows r*B/W:(r+1)*B/W of the
batch the single-process run draws, and the step computes the single-process loss:
- terms that compare samples (the sample-level loss with in-batch or bank negatives, both
  sparse losses) run on embeddings all-gathered from every process, the gradient flowing
  through the process's own rows (the SimCLR / MoCo v3 gather); every process holds the same
  value, and the processes' gradients sum to the gradient of that value;
- per-sample terms (dense) are summed over processes with the global normaliser;
- BatchNorm normalises with the statistics of the global batch: torch's SyncBatchNorm on CUDA,
  `GlobalBatchNorm` on the CPU, where SyncBatchNorm refuses to run (a process may hold no
  depth sample: its depth encoder still runs, on an empty batch, to take part);
- DDP averages the processes' gradients, so the backward pass runs on W x the loss.
Each process keeps a full copy of the memory bank and applies the same update from the
gathered batch. Process 0 alone writes outputs, logs, curves and checkpoints.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hcmoco.config import ParamsError
from hcmoco.errors import HcmocoError
from hcmoco.models import HCMoCo
from hcmoco.precision import at_least_float32
from hcmoco.train.runtime import select_device


def _active() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


class _SumLocalGrad(torch.autograd.Function):
    """Sum over processes in value; the gradient goes to the local input only."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.detach().clone()
        tdist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


class _GatherLocalGrad(torch.autograd.Function):
    """Concatenation of every process's (n, ...) tensor in rank order; the gradient goes to
    the local rows only."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rank, ctx.n = tdist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(tdist.get_world_size())]
        tdist.all_gather(parts, x.detach().contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; with world_size 1 every method is the identity."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @staticmethod
    def from_env() -> "Dist":
        """From torchrun's RANK / WORLD_SIZE / LOCAL_RANK (absent: a single process)."""
        try:
            d = Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError:
            raise HcmocoError("RANK / WORLD_SIZE / LOCAL_RANK: not integers (set them with torchrun)") from None
        if d.world_size < 1 or not 0 <= d.rank < d.world_size:
            raise HcmocoError(f"RANK {d.rank} / WORLD_SIZE {d.world_size}: not a valid process place")
        return d

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        if batch_size % self.world_size:
            raise ParamsError(f"pretrain.batch_size: {batch_size} (the global batch) is not divisible by "
                              f"the {self.world_size} processes")
        n = batch_size // self.world_size
        return slice(self.rank * n, (self.rank + 1) * n)

    def local(self, x: Tensor) -> Tensor:
        return x[self.rows(len(x))] if self.enabled else x

    def gather(self, x: Tensor) -> Tensor:
        """Every process's rows in rank order (gradient to the local rows)."""
        if not self.enabled:
            return x
        if x.dtype == torch.bool:  # not every backend reduces bools
            return _GatherLocalGrad.apply(x.to(torch.uint8)).bool()
        return _GatherLocalGrad.apply(x)

    def total(self, x: Tensor) -> Tensor:
        """Sum over processes (gradient to the local term)."""
        return _SumLocalGrad.apply(x) if self.enabled else x

    def share(self, loss: Tensor, count: Tensor) -> Tensor:
        """A mean over this process's `count` items -> the mean over every process's items."""
        if not self.enabled:
            return loss
        n = count.detach().to(loss.dtype).reshape(1)
        total = n.clone()
        tdist.all_reduce(total)
        return self.total(loss * n[0] / total[0].clamp(min=1))

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()


@contextlib.contextmanager
def process_group(requested_device: str) -> Iterator[tuple[Dist, torch.device]]:
    """(this process's Dist, its device); initialises and ends the process group of a
    multi-process run (NCCL on CUDA, one device per process; gloo on the CPU)."""
    d = Dist.from_env()
    device = select_device(requested_device)
    if not d.enabled:
        yield d, device
        return
    if device.type == "cuda":
        if d.local_rank >= torch.cuda.device_count():
            raise HcmocoError(f"LOCAL_RANK {d.local_rank}: only {torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    owner = not tdist.is_initialized()
    if owner:
        try:
            tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except (ValueError, RuntimeError) as err:
            raise HcmocoError(f"WORLD_SIZE {d.world_size}: the process group did not start (launch with "
                              f"torchrun): {str(err).splitlines()[0]}") from None
    try:
        yield d, device
    finally:
        if owner:
            tdist.destroy_process_group()


def _global_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-channel (mean, biased variance, count) of x (N, C, ...) over every process's rows:
    two-pass moments per process, combined exactly (Chan et al.) after one all-gather; a
    process may hold no rows."""
    dims = [0, *range(2, x.dim())]
    c, n = x.shape[1], x.numel() // max(x.shape[1], 1)
    mean = x.mean(dims) if n else x.new_zeros(c)
    m2 = ((x - mean.view(1, c, *[1] * (x.dim() - 2))) ** 2).sum(dims)
    local = torch.cat([mean, m2, x.new_full((1,), n)])
    parts = [torch.empty_like(local) for _ in range(tdist.get_world_size())]
    tdist.all_gather(parts, local)
    stats = torch.stack(parts)
    counts, total = stats[:, -1:], stats[:, -1].sum()
    if total <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got {int(total)} in all processes")
    mean = (stats[:, :c] * counts).sum(0) / total
    m2 = stats[:, c:2 * c].sum(0) + (counts * (stats[:, :c] - mean) ** 2).sum(0)
    return mean, m2 / total, total


class _GlobalNormalise(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias with the global statistics; the backward pass
    all-reduces the two per-channel sums it needs (as SyncBatchNorm does). Parameter gradients
    are this process's sums: DDP adds them up."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor, total: Tensor) -> Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd, total)
        return xhat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, dy: Tensor):
        xhat, weight, invstd, total = ctx.saved_tensors
        dims, shape = [0, *range(2, dy.dim())], [1, -1] + [1] * (dy.dim() - 2)
        dbias, dweight = dy.sum(dims), (dy * xhat).sum(dims)
        sums = torch.cat([dbias, dweight])
        tdist.all_reduce(sums)
        g_bias, g_weight = sums.chunk(2)
        dx = (dy - g_bias.view(shape) / total - xhat * (g_weight / total).view(shape)) * (invstd * weight).view(shape)
        return dx, dweight, dbias, None, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (1d/2d/3d) that normalises with the statistics of the batch across all
    processes when training in a process group, else exactly nn.BatchNorm. Two collectives
    per layer and step (one forward, one backward). Parameter and buffer names are
    BatchNorm's, so state dicts load either way."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        self._check_input_dim(x)
        xf = at_least_float32(x)
        with torch.no_grad():
            mean, var, total = _global_moments(xf)
        ones = xf.new_ones(x.shape[1])
        weight, bias = (self.weight, self.bias) if self.affine else (ones, torch.zeros_like(ones))
        y = _GlobalNormalise.apply(xf, weight, bias, mean, torch.rsqrt(var + self.eps), total)
        if self.track_running_stats:
            self._update_running(mean, var, total)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean), alpha=m)
        self.running_var.mul_(1 - m).add_((var * n / (n - 1)).to(self.running_var), alpha=m)


def to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm of `module` replaced by GlobalBatchNorm sharing its parameters and buffers."""
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, to_global_batchnorm(child))
    return out


class ShardedHCMoCo(HCMoCo):
    """HCMoCo whose depth encoder runs in every process while any process holds depth
    samples, even on an empty local batch, so the BatchNorm collectives stay in step."""

    def _depth_branches(self, depth: Tensor, has_depth: Tensor | None) -> list[Tensor] | None:
        if has_depth is None or not _active():
            return super()._depth_branches(depth, has_depth)
        count = has_depth.sum().reshape(1).to(torch.int64)
        tdist.all_reduce(count)
        if int(count) == 0:
            return None
        idx = has_depth.nonzero(as_tuple=True)[0]
        feats = self.depth_encoder(depth.index_select(0, idx))
        return [f.new_zeros((depth.shape[0],) + f.shape[1:]).index_copy(0, idx, f) for f in feats]


def data_parallel(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """`model` itself for one process; else global BatchNorm and DDP around it. Parameters a
    stage does not use (the dense heads in stage 1) are found each step; buffers are not
    broadcast, since global BatchNorm updates its running statistics alike in every process."""
    if not d.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = to_global_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True, forward_sync_buffers=False)
