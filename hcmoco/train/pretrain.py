"""HCMoCo pre-training (docs/METHOD.md sections 1-4): stage 1 (sample-level) and stage 2 (all objectives).

    python -m hcmoco.train.pretrain --profile default --stage 1 \
        --data data/default/synth/synth_ntu data/default/synth/synth_mpii --out models/default/pretrain/stage1
    python -m hcmoco.train.pretrain --profile default --stage 2 --variant hcmoco \
        --init models/default/pretrain/stage1 --data ... --out models/default/pretrain/hcmoco

Stage 2 starts from stage 1's weights and memory bank; a variant is a set of stage-2 loss
weights (params `pretrain.variants`). The output directory receives `model.pt` (encoders,
heads, bank), `rgb_backbone.pt`, `depth_backbone.pt` and `metrics.json`; `--curves` receives
the loss curves (dvclive). Checkpoints every `checkpoint_every` steps go to `checkpoints/`; a
re-run resumes from the last one and ends with the same weights as an uninterrupted run.
`torchrun --nproc-per-node N -m hcmoco.train.pretrain ...` trains on N processes with the same
global batch and the same loss (see hcmoco/train/distributed.py); process 0 writes everything.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, check_bank_size
from hcmoco.losses import (MemoryBank, batch_contrast_loss, dense_contrast_loss, sample_contrast_loss,
                           sample_foreground_cells, sparse_inter_loss, sparse_intra_loss)
from hcmoco.models import HCMoCo, build_model, load_pretrained, save_backbone
from hcmoco.models.checkpoint import save_weights
from hcmoco.models.imagenet import load_imagenet
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.curves import write_curves
from hcmoco.train.distributed import Dist, ShardedHCMoCo, data_parallel, process_group
from hcmoco.processed.pretrain_data import PretrainingData
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints, load_checkpoint, save_checkpoint
from hcmoco.precision import autocast
from hcmoco.train.runtime import compute_dtype, cosine_schedule, resolve_precision, seed_everything

STAGE1_WEIGHTS = {"dense": 0.0, "sparse_intra": 0.0, "sparse_inter": 0.0}


def step_losses(model: HCMoCo, bank: MemoryBank | None, batch: dict, weights: dict, cfg: dict,
                gen: torch.Generator, dist: Dist = Dist()) -> tuple[dict[str, torch.Tensor], dict]:
    """Forward this process's rows of the batch and compute every objective with a non-zero
    weight, each over the whole (all-gathered) batch.

    Returns ({term: scalar}, {"index", "has_depth", "g": the global embeddings} for the bank update)."""
    needs_dense = weights["dense"] > 0 or weights["sparse_intra"] > 0 or weights["sparse_inter"] > 0
    out = model(batch["rgb"], batch["depth"], batch["keypoints"], batch["visible"], batch["has_depth"],
                joint_cells=batch["joint_cells"] if needs_dense else None, dense=needs_dense)
    g = {"rgb": dist.gather(out["g_rgb"]), "depth": dist.gather(out["g_depth"]),
         "keypoints": dist.gather(out["g_kp"])}
    index, has_depth = dist.gather(batch["index"]), dist.gather(batch["has_depth"])
    if bank is None:  # sample_contrast: batch
        terms = {"sample": batch_contrast_loss(g, has_depth, cfg["tau"])}
    else:
        negatives = bank.sample_negatives(cfg["negatives"], len(index), gen)
        terms = {"sample": sample_contrast_loss(g, bank.banks(), index, negatives, has_depth, cfg["tau"])}
    if weights["dense"] > 0:  # cells drawn for the whole batch: the draw does not depend on W
        cells = dist.local(sample_foreground_cells(dist.gather(batch["foreground"]), cfg["dense_cells"], gen))
        usable = batch["has_depth"] & batch["foreground"].flatten(1).any(1)
        terms["dense"] = dist.share(dense_contrast_loss(out["f_rgb"], out["f_depth"], cells, usable, cfg["tau"]),
                                    usable.sum())
    if weights["sparse_intra"] > 0 or weights["sparse_inter"] > 0:
        j_rgb, j_depth, visible = dist.gather(out["j_rgb"]), dist.gather(out["j_depth"]), dist.gather(batch["visible"])
    if weights["sparse_intra"] > 0:
        terms["sparse_intra"] = sparse_intra_loss(j_rgb, j_depth, dist.gather(out["h_kp"]), visible, has_depth,
                                                  cfg["tau"])
    if weights["sparse_inter"] > 0:
        terms["sparse_inter"] = sparse_inter_loss(j_rgb, j_depth, visible, has_depth, cfg["tau"])
    return terms, {"index": index, "has_depth": has_depth, "g": g}


def make_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or AdamW (short CPU schedules, see params/README.md).
    foreach: one fused update over all tensors; the per-tensor loop (the CPU default) cost
    about 40 ms a step for the ~450 tensors of the narrow model."""
    params = list(params)
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"],
                               weight_decay=cfg["weight_decay"], foreach=True)
    return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], foreach=True)


def bank_state(bank: MemoryBank | None) -> dict:
    return {} if bank is None else bank.state_dict()


def pretrain(cfg: dict, stage: int, weights: dict, data_dirs: Sequence[Path], out: Path, curves: Path | None,
             init: Path | None = None, log: RunLog | None = None, stop_after: int | None = None) -> dict:
    """Train one stage; writes `out` atomically. `stop_after` ends early (a simulated kill).
    Under torchrun every process calls this; process 0 alone writes and logs."""
    Dist.from_env().rows(cfg["batch_size"])  # an indivisible batch fails before any rendezvous
    with process_group(cfg["device"]) as (dist, device):
        return _train(cfg, stage, weights, data_dirs, out, curves, init, log if dist.is_main else None,
                      stop_after, dist, device)


def _train(cfg: dict, stage: int, weights: dict, data_dirs: Sequence[Path], out: Path, curves: Path | None,
           init: Path | None, log: RunLog | None, stop_after: int | None, dist: Dist, device: torch.device) -> dict:
    rows = dist.rows(cfg["batch_size"])
    seed = cfg["seed"] + 1000 * stage
    seed_everything(seed)
    torch.set_num_threads(cfg["threads"])
    data = PretrainingData([Path(d) / "train" for d in data_dirs])
    # several processes must not measure apart (they could choose apart): fp32 unless set
    precision, precision_why = resolve_precision(cfg["precision"], device, None if dist.enabled else cfg["backbone"],
                                                 data.resolution, rows.stop - rows.start)
    use_bank = cfg["sample_contrast"] == "bank"
    if use_bank and cfg["negatives"] >= len(data):
        raise ParamsError(f"pretrain.negatives: {cfg['negatives']} must be below the bank size {len(data)}")
    model = build_model(cfg, data.num_joints, ShardedHCMoCo if dist.enabled else HCMoCo)  # same parameters
    bank = MemoryBank(len(data), cfg["embed_dim"], momentum=cfg["bank_momentum"],
                      generator=torch.Generator().manual_seed(seed)) if use_bank else None
    if init is None and cfg["init_weights"]:  # stage 1 from ImageNet weights (docs/METHOD.md 2)
        for encoder in (model.rgb_encoder, model.depth_encoder):
            load_imagenet(encoder, cfg["init_weights"])
    if init is not None:  # one line naming the file if unusable
        load_pretrained(init, data.num_joints, model=model, bank=bank)
    dtype = compute_dtype(precision)
    model.to(device, dtype=dtype, memory_format=torch.channels_last)
    if bank is not None:
        bank.to(device, dtype=dtype)
    optimizer = make_optimizer(cfg, model.parameters())
    steps = cfg[f"stage{stage}_steps"]
    lrs = cosine_schedule(cfg["lr"], cfg["lr_min"], steps)
    ckdir = checkpoint_dir(out, {"cfg": cfg, "stage": stage, "weights": weights},
                           {"init": Path(init) / "model.pt" if init else None, "init_weights": cfg["init_weights"],
                            **{f"data{i}": Path(d) / "train" for i, d in enumerate(data_dirs)}}, "hcmoco.train.pretrain")
    start, history = 0, []
    resumed = load_checkpoint(ckdir)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        if bank is not None:
            bank.load_state_dict(resumed["bank"])
        optimizer.load_state_dict(resumed["optimizer"])
        start, history = resumed["step"], resumed["history"]
        if log:
            log.event("resumed", step=start, checkpoint=str(ckdir))
    net = data_parallel(model, dist, device)  # `model` itself for one process
    net.train()
    data_time = compute_time = 0.0
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"pretrain stage {stage} -> {out.name}",
               leave=False, mininterval=2.0, disable=not dist.is_main)
    for step in bar:
        t0 = time.perf_counter()
        batch = data.batch(data.draw(seed, step, cfg["batch_size"])[rows])
        batch = {k: v.to(device, dtype=dtype if v.is_floating_point() else None, non_blocking=True)
                 for k, v in batch.items()}
        t1 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        with autocast(precision, device):
            terms, whole = step_losses(net, bank, batch, weights, cfg, gen, dist)
        total = terms["sample"] + sum(weights[k] * v for k, v in terms.items() if k != "sample")
        optimizer.zero_grad(set_to_none=True)
        # every process holds the global loss with gradients through its own rows; DDP averages
        (total * dist.world_size if dist.enabled else total).backward()
        optimizer.step()
        if bank is not None:  # the same update in every process (gathered rows)
            bank.update(whole["index"], whole["g"], {"depth": whole["has_depth"]})
        t2 = time.perf_counter()
        data_time, compute_time = data_time + t1 - t0, compute_time + t2 - t1
        record = {"step": step + 1, "lr": float(lrs[step]), "loss": total.item(),
                  **{k: v.item() for k, v in terms.items()}}
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k not in ("step", "lr")}
                        | {"samples/s": f"{cfg['batch_size'] * (step + 1 - start) / (data_time + compute_time):.0f}"})
        if (step + 1) % cfg["checkpoint_every"] == 0 and step + 1 < steps and dist.is_main:
            save_checkpoint(ckdir, {"model": model.state_dict(), "bank": bank_state(bank),
                                    "optimizer": optimizer.state_dict(), "step": step + 1, "history": history})
            if log:
                log.event("checkpoint", step=step + 1, loss=record["loss"])
        if stop_after is not None and step + 1 >= stop_after:
            return {"stopped_at": step + 1}
    bar.close()
    ran = steps - start
    metrics = {"stage": stage, "weights": weights, "steps": steps, "resumed_from": start,
               "final": history[-1] if history else {}, "device": str(device), "precision": precision,
               "precision_why": precision_why,
               "processes": dist.world_size,
               "samples_per_s": round(cfg["batch_size"] * ran / max(data_time + compute_time, 1e-9), 2),
               "data_wait_fraction": round(data_time / max(data_time + compute_time, 1e-9), 4),
               "seconds": round(data_time + compute_time, 2)}
    if dist.is_main:
        write_outputs(out, model.to("cpu"), bank, cfg, metrics)
        if curves is not None:
            write_curves(curves, history, "pretrain", history)
        clear_checkpoints(ckdir)
    dist.barrier()  # every process returns once the outputs exist
    return metrics


def write_outputs(out: Path, model: HCMoCo, bank: MemoryBank | None, cfg: dict, metrics: dict) -> None:
    with atomic_directory(out) as tmp:
        bank_cpu = bank_state(bank.to("cpu") if bank is not None else None)
        save_weights(tmp / "model.pt", {"model": model.state_dict(), "bank": bank_cpu, "config": cfg})
        for modality in ("rgb", "depth"):
            save_backbone(tmp / f"{modality}_backbone.pt", model, modality)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True)
    parser.add_argument("--variant", help="stage-2 variant (params pretrain.variants)")
    parser.add_argument("--init", help="stage-1 output directory (stage 2)")
    parser.add_argument("--data", nargs="+", required=True, help="processed source directories")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--curves", help="directory for the loss curves")

    def body(args, params):
        cfg = params["pretrain"]
        if args.stage == 2 and (args.variant not in cfg["variants"] or not args.init):
            raise ParamsError(f"--variant: stage 2 needs --init and one of {', '.join(cfg['variants'])}")
        weights = STAGE1_WEIGHTS if args.stage == 1 else cfg["variants"][args.variant]
        check_bank_size(cfg, args.data)  # before any process group or model
        main_process = Dist.from_env().is_main  # under torchrun, process 0 alone logs
        log = RunLog(log_path_for(args.out), params, stage=args.stage, variant=args.variant) if main_process else None
        metrics = pretrain(cfg, args.stage, weights, [Path(d) for d in args.data], Path(args.out),
                           Path(args.curves) if args.curves else None, Path(args.init) if args.init else None, log)
        if log:
            log.event("done", **metrics)
            print(f"{args.out}: {metrics['samples_per_s']} samples/s, final {metrics['final']}")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
