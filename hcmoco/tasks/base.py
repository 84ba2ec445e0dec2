"""What every downstream task defines (`Task`) and the pieces the task definitions share.

A task is one object (hcmoco.tasks.<name>): the backbone modality it fine-tunes, the processed
fields it reads and how they become a batch, its head and loss, its evaluation (main metric
first, then the others the tables show), its predictions kept for the qualitative sheets and
how they are drawn. The training loops (hcmoco.train.finetune, hcmoco.train.probe), the data
reader (hcmoco.train.task_data) and the results (hcmoco.results) only talk to this interface.

`Task.variant(fields)` picks the task's form for a processed split from the fields it stores
(e.g. DensePose R-CNN on whole images instead of the dense head on person crops); the params
choose the split (its domain), so they choose the variant.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from hcmoco.errors import HcmocoError
from hcmoco.precision import autocast


class Task:
    """The interface, with the defaults of a dense head on person crops (a `TaskModel`)."""

    name: str = ""
    title: str = ""                        # the tables' and figures' name of the task
    modality: str = "rgb"                  # the backbone it fine-tunes ("rgb" or "depth"), drawn as the input
    fields: tuple[str, ...] = ()           # processed fields a sample needs
    metrics: tuple[tuple[str, str], ...] = ()  # (key, label) tabulated; the first is the main metric
    prediction_keys: tuple[str, ...] = ()  # arrays of `predict` per sample (besides "index")
    frozen_head: str = "a linear probe"    # the head of the frozen protocol, in words
    dense: bool = True                     # per-pixel targets (sampled at the feature grid by the probe)
    keeps_predictions: bool = True         # a run writes predictions.npz
    crops: bool = True                     # person crops (the frozen protocol needs them)
    # the paper's numbers known for this task (docs/METHOD.md 6): {"dataset", "init", "metric", "fraction",
    # "value" (percent), "source"}; the tables show one where the task's dataset is that dataset
    references: tuple[dict, ...] = ()

    @property
    def metric(self) -> str:
        return self.metrics[0][0]

    def __repr__(self) -> str:
        return f"<task {self.name} ({type(self).__name__})>"

    # data ---------------------------------------------------------------------------------------
    def variant(self, fields: dict) -> "Task":
        """The form of this task for a split storing `fields` (the default: itself)."""
        return self

    def batch(self, arrays: dict[str, np.ndarray], with_input: bool = True) -> dict[str, torch.Tensor]:
        """Tensors of one batch from the arrays of `fields`: "input" (the network input, left
        out with `with_input=False` where the targets do not need it) and the targets."""
        raise NotImplementedError

    # model and loss -----------------------------------------------------------------------------
    def head(self, widths: Sequence[int], cfg: dict, resolution: int, num_joints: int) -> nn.Module:
        """The head on HRNet branch maps of `widths`; cfg: params finetune.tasks.<task>."""
        raise NotImplementedError

    def forward(self, head: nn.Module, feats: list[torch.Tensor], size: tuple[int, int]):
        """The head's output for branch maps `feats` of inputs of `size` (dense outputs at that size)."""
        return head(feats, size)

    def loss(self, head: nn.Module, out, batch: dict, cfg: dict, class_weights: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def model(self, backbone: nn.Module, cfg: dict, data) -> nn.Module:
        """The network fine-tuned: `backbone` + the head (data: the training TaskData)."""
        return TaskModel(self, backbone, self.head(backbone.out_channels, cfg, data.resolution, data.num_joints))

    def batch_size(self, finetune: dict, cfg: dict) -> int:
        return finetune["batch_size"]

    def train_loss(self, model: nn.Module, data, picked: np.ndarray, device: torch.device, cfg: dict,
                   class_weights: torch.Tensor | None, seed: int, step: int) -> torch.Tensor:
        """The loss of training batch `step` (samples `picked` of `data`)."""
        batch = {k: v.to(device, non_blocking=True) for k, v in data.batch(picked).items()}
        return self.loss(model.head, model(batch["input"]), batch, cfg, class_weights)

    # evaluation ---------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data, indices: np.ndarray, *, device: torch.device, batch_size: int,
                 precision: str, full: bool, miou: str, densepose_box_ignore: str) -> dict:
        """{"value": main metric, "tiebreak": higher is better among equal values, ...details}
        (hcmoco.train.task_eval.evaluate adds metric, num_samples and makes it strict JSON)."""
        raise NotImplementedError

    def predict(self, model: nn.Module, data, indices: np.ndarray, *, device: torch.device,
                precision: str) -> dict[str, np.ndarray]:
        """`prediction_keys` arrays of samples `indices`, in one batch, drawable."""
        _, batch, out = next(outputs(model, data, indices, max(len(indices), 1), device, precision))
        return self.drawable(out, batch)

    def drawable(self, out, batch: dict) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # qualitative sheets -------------------------------------------------------------------------
    def draw_input(self, ax, sample: dict) -> None:
        if self.modality == "rgb":
            ax.imshow(sample["rgb"])
        else:
            from hcmoco.processed.preview import depth_image

            ax.imshow(depth_image(sample["depth"]), cmap="gray", vmin=0, vmax=1)

    def draw(self, ax, sample: dict, shown: dict | None, palette: np.ndarray, edges) -> None:
        """The ground truth of `sample` (shown None) or the prediction `shown` on axes `ax`."""
        raise NotImplementedError


class TaskModel(nn.Module):
    """HRNet backbone + a task's head; forward(input) -> the head's output at input size."""

    def __init__(self, task: Task, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.task, self.backbone, self.head = task, backbone, head

    def forward(self, x: torch.Tensor):
        return self.task.forward(self.head, self.backbone(x), tuple(x.shape[-2:]))


def outputs(model: nn.Module, data, indices: np.ndarray, batch_size: int, device: torch.device,
            precision: str) -> Iterator[tuple[np.ndarray, dict, object]]:
    """(indices, batch, model output) per batch of `batch_size` samples, without gradients."""
    for lo in range(0, len(indices), batch_size):
        batch = data.batch(indices[lo:lo + batch_size])
        with torch.no_grad(), autocast(precision, device):
            out = model(batch["input"].to(device))
        yield indices[lo:lo + batch_size], batch, out


def unknown(name: str, known) -> HcmocoError:
    return HcmocoError(f"unknown task {name!r} (known: {', '.join(known)})")
