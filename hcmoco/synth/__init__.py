"""SynthHuman: a procedural, deterministic renderer of people with every modality and label
of the paper's datasets (RGB, depth, parsing, DensePose IUV, 2D/3D keypoints).

See the README, section "SynthHuman domains", and docs/METHOD.md section 1. Public API:
`render_batch`, `DOMAINS` / `DomainSpec`, the keypoint `LAYOUTS` and `LAYOUT_EDGES` (defined in
hcmoco.processed.keypoints), the 25 `PART_NAMES` and `iuv_to_surface`.
"""
from hcmoco.processed.keypoints import LAYOUT_EDGES, LAYOUTS
from hcmoco.synth.body import PART_NAMES, iuv_to_surface
from hcmoco.synth.domains import DOMAINS, DomainSpec, render_batch

__all__ = ["DOMAINS", "DomainSpec", "LAYOUTS", "LAYOUT_EDGES", "PART_NAMES", "iuv_to_surface", "render_batch"]
