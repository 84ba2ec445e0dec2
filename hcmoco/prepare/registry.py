"""The raw datasets the pipeline reads: where each file comes from and how to check it.

Public datasets list their files with URL, expected size in bytes and a checksum where one is
published; each value carries a comment naming its source. Where nothing is published the value
is None: the first download records the file's sha256 in `<out>/CHECKSUMS.json` and later runs
are checked against that record (hcmoco.prepare.download).

Dataset names are the raw roots the preprocessors (hcmoco.prepare.<module>) document.

Licensed datasets cannot be downloaded by the pipeline: their entry says where to request them
and which files must exist under `data/raw/<name>/` (glob patterns, each must match at least one
file; hcmoco.prepare.licensed).

Mirrors: `HCMOCO_MIRROR=http://host[:port][/prefix]` (or `--mirror` of the fetch CLI) replaces
the scheme and host of every URL, keeping its path and query:
`https://dl.fbaipublicfiles.com/densepose/x.json` -> `http://host:port/prefix/densepose/x.json`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from hcmoco.errors import HcmocoError

MIRROR_ENV = "HCMOCO_MIRROR"


@dataclass(frozen=True)
class RemoteFile:
    name: str                      # path under data/raw/<dataset>/, may include a folder
    url: str
    size: int | None = None        # bytes, where published
    md5: str | None = None         # hex, where published
    sha256: str | None = None      # hex, where published
    extract: bool = False          # unpack after verification (.zip, .tar, .tar.gz, .tgz, .gz)
    optional: bool = False         # fetched only when named with --only


@dataclass(frozen=True)
class PublicDataset:
    name: str
    title: str
    homepage: str
    files: tuple[RemoteFile, ...]


@dataclass(frozen=True)
class LayoutEntry:
    pattern: str                   # glob relative to the dataset root
    what: str                      # where the matching files come from


@dataclass(frozen=True)
class LicensedDataset:
    name: str
    title: str
    request_url: str               # where to register / request access
    layout: tuple[LayoutEntry, ...]
    notes: tuple[str, ...] = field(default=())   # extra preparation steps, shown with the error


# --- public -------------------------------------------------------------------------------------
# COCO 2014: sizes and sha256 as pinned by TensorFlow Datasets
# (tensorflow/datasets, tensorflow_datasets/url_checksums/coco.txt); cocodataset.org publishes none.
# docs/METHOD.md section 7 quotes the same train2014.zip size (13,510,573,713 bytes).
_COCO = "http://images.cocodataset.org"
COCO_2014 = PublicDataset("coco2014", "COCO 2014 images and person keypoints", "https://cocodataset.org/#download", (
    RemoteFile("train2014.zip", f"{_COCO}/zips/train2014.zip", 13510573713,
               sha256="ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775", extract=True),
    RemoteFile("val2014.zip", f"{_COCO}/zips/val2014.zip", 6645013297,
               sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0", extract=True),
    RemoteFile("annotations_trainval2014.zip", f"{_COCO}/annotations/annotations_trainval2014.zip", 252872794,
               sha256="031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009", extract=True),
))

# DensePose-COCO: URLs from facebookresearch/DensePose DensePoseData/get_DensePose_COCO.sh (the file
# names of the original code, which hcmoco.prepare.densepose_coco_real reads); detectron2's
# projects/DensePose/doc/DENSEPOSE_DATASETS.md serves the same splits under
# densepose/annotations/coco/densepose_{train,valminusminival,minival}2014.json and gives only
# rounded sizes (526M, 105M, 31M), so size and checksum stay None (recorded at first download).
# Evaluation data: the three files detectron2's DensePose evaluator fetches
# (projects/DensePose/densepose/evaluation/densepose_coco_evaluation.py); the same files are in
# https://dl.fbaipublicfiles.com/densepose/densepose_eval_data.tar.gz. No size/checksum published.
# Layout: annotations/ as hcmoco.prepare.densepose_coco_real reads it, eval_data/ as DensePose's
# get_eval_data.sh names it (hcmoco.eval.densepose_geodesic's data_dir).
_FB = "https://dl.fbaipublicfiles.com/densepose"
DENSEPOSE_COCO = PublicDataset("densepose_coco", "DensePose-COCO annotations and evaluation data",
                               "https://github.com/facebookresearch/DensePose", (
    RemoteFile("annotations/densepose_coco_2014_train.json", f"{_FB}/densepose_coco_2014_train.json"),
    RemoteFile("annotations/densepose_coco_2014_valminusminival.json",
               f"{_FB}/densepose_coco_2014_valminusminival.json"),
    RemoteFile("annotations/densepose_coco_2014_minival.json", f"{_FB}/densepose_coco_2014_minival.json"),
    RemoteFile("eval_data/Pdist_matrix.pkl", f"{_FB}/data/Pdist_matrix.pkl"),
    RemoteFile("eval_data/SMPL_subdiv.mat", f"{_FB}/data/SMPL_subdiv.mat"),
    RemoteFile("eval_data/SMPL_SUBDIV_TRANSFORM.mat", f"{_FB}/data/SMPL_SUBDIV_TRANSFORM.mat"),
))

# MPII Human Pose: the download URLs of human-pose.mpi-inf.mpg.de (as in TensorFlow Datasets' MPII
# builder and HCMoCo's README link); only a rounded image size is published (12.9 GB), no checksum.
_MPII = "https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr"
MPII = PublicDataset("mpii", "MPII Human Pose (research use)", "http://human-pose.mpi-inf.mpg.de/", (
    RemoteFile("mpii_human_pose_v1.tar.gz", f"{_MPII}/mpii_human_pose_v1.tar.gz", extract=True),
    RemoteFile("mpii_human_pose_v1_u12_2.zip", f"{_MPII}/mpii_human_pose_v1_u12_2.zip", extract=True),
))

# ITOP, Zenodo record 3932973: the side view. Zenodo lists an md5 per file; the two below are the
# record's values as quoted in a public project's documentation (found by code search, not read
# from zenodo.org itself); the others could not be confirmed, so they stay None and are recorded
# at first download. No sizes are published in bytes.
# The depth maps and labels are what hcmoco.prepare.itop reads; images and point clouds optional.
_ITOP = "https://zenodo.org/records/3932973/files"


def _itop(split: str, kind: str, md5: str | None = None, optional: bool = False) -> RemoteFile:
    name = f"ITOP_side_{split}_{kind}.h5.gz"
    return RemoteFile(name, f"{_ITOP}/{name}?download=1", md5=md5, extract=True, optional=optional)


ITOP_SIDE = PublicDataset("itop", "ITOP side view (depth 3D pose)", "https://zenodo.org/records/3932973", (
    _itop("train", "depth_map"),
    _itop("train", "labels"),
    _itop("test", "depth_map"),
    _itop("test", "labels", md5="7205b0ba47f76892742ded774754d7a1"),
    _itop("train", "images", optional=True),
    _itop("test", "images", optional=True),
    _itop("train", "point_cloud", optional=True),
    _itop("test", "point_cloud", md5="3f5227d6f260011b19f325fffde08a65", optional=True),
))

# --- licensed -----------------------------------------------------------------------------------
# NTU RGB+D 60 and the setups NTU RGB+D 120 adds (S018-S032) share one root, the layout
# hcmoco.prepare.ntu reads: the archives (nturgbd_skeletons_*.zip, nturgbd_depth_masked_sNNN.zip,
# nturgbd_rgb_sNNN.zip) unpack to the nturgb+d_* folders below. RGB frames are extracted from the
# .avi videos by the user, numbered from 1 like the depth frames (000001.jpg is frame 1).
_FFMPEG = ("extract RGB frames: for v in {root}/nturgb+d_rgb/*_rgb.avi; do d={root}/nturgb+d_rgb_frames/"
           "$(basename \"$v\" _rgb.avi); mkdir -p \"$d\" && ffmpeg -nostdin -loglevel error -i \"$v\" "
           "-start_number 1 -q:v 2 \"$d/%06d.jpg\"; done")
NTU = LicensedDataset("ntu", "NTU RGB+D 60 (and the 120 additions)",
                      "https://rose1.ntu.edu.sg/dataset/actionRecognition/", (
    LayoutEntry("nturgb+d_skeletons/S*.skeleton",
                "skeleton files SsssCcccPpppRrrrAaaa.skeleton (nturgbd_skeletons_*.zip)"),
    LayoutEntry("nturgb+d_depth_masked/S*/MDepth-*.png",
                "masked depth frames <video>/MDepth-00000001.png... (nturgbd_depth_masked_sNNN.zip)"),
    LayoutEntry("nturgb+d_rgb_frames/S*/*.jpg", "RGB frames <video>/000001.jpg..., extracted from "
                "nturgb+d_rgb/<video>_rgb.avi (nturgbd_rgb_sNNN.zip) with ffmpeg"),
), ("NTU RGB+D 120 setups S018-S032 go into the same folders", _FFMPEG))

# Human3.6M: the layout hcmoco.prepare.h36m reads, i.e. what HCMoCo's
# HRNet-Semantic-Segmentation/data/human3.6m/mp_parsedata.py writes (frames counted from 0) from the
# official videos S*/Videos/*.mp4 and part labels S*/MySegmentsMat/PartLabels/*.mat, for the
# subjects with part labels.
_H36M_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
HUMAN36M = LicensedDataset("h36m", "Human3.6M", "http://vision.imar.ro/human3.6m/description.php", tuple(
    entry for s in _H36M_SUBJECTS for entry in (
        LayoutEntry(f"protocol_1/rgb/{s}/*/*.[pj][np]g", f"frames <video>/00000000.png (or .jpg) of {s}"),
        LayoutEntry(f"protocol_1/seg/{s}/*/*.png", f"part labels <video>/00000000.png of {s}"),
    )), ("download the Videos and Segments (PartLabels) archives of subjects S1, S5-S9, S11 into {root} "
         "(S1/Videos/*.mp4, S1/MySegmentsMat/PartLabels/*.mat, ...) and run HCMoCo's "
         "HRNet-Semantic-Segmentation/data/human3.6m/mp_parsedata.py there",))

# NTURGBD-Parsing-4K: the layout hcmoco.prepare.parsing4k reads, as recommended by HCMoCo's
# pycontrast/data/NTURGBD-Parsing-4K/README.md: lists and label maps from its OneDrive annotation
# archive, depth frames collected by name from NTU RGB+D 60/120 (<name> = SsssCcccPpppRrrrAaaaFfff,
# frame counted from 1; NTU numbers its depth files with 8 digits). The "v3" (20 %) lists are the
# heads of the v2 lists, so they are not required.
_COLLECT_DEPTH = (
    "collect the depth frames (bash, NTU in data/raw/ntu): mkdir -p {root}/depth && cat {root}/train_list_v2.txt "
    "{root}/val_list_v2.txt | while read -r l; do n=$(basename \"$l\" .jpg); f=${{n##*F}}; "
    "cp data/raw/ntu/nturgb+d_depth_masked/${{n%F*}}/MDepth-$(printf %08d $((10#$f))).png "
    "{root}/depth/MDepth-$n.png; done")
NTURGBD_PARSING_4K = LicensedDataset(
    "parsing4k", "NTURGBD-Parsing-4K (annotations; frames from NTU RGB+D 60/120)",
    "https://1drv.ms/u/s!AjLpFg-f48ljgZU0rBpZiLICE8BDgA?e=Ikm4nm", (
        LayoutEntry("train_list_v2.txt", "train list from the annotation archive, lines images/<name>.jpg"),
        LayoutEntry("val_list_v2.txt", "test list from the annotation archive"),
        LayoutEntry("png_annotation_v2/S*.png", "part label maps <name>.png from the annotation archive"),
        LayoutEntry("depth/MDepth-S*.png", "NTU masked depth of each listed frame, MDepth-<name>.png"),
    ), ("NTU RGB+D 60/120 is requested at https://rose1.ntu.edu.sg/dataset/actionRecognition/ "
        "(see --dataset ntu)", _COLLECT_DEPTH))

DATASETS: dict[str, PublicDataset | LicensedDataset] = {d.name: d for d in (
    COCO_2014, DENSEPOSE_COCO, MPII, ITOP_SIDE, NTU, HUMAN36M, NTURGBD_PARSING_4K)}


def get_dataset(name: str) -> PublicDataset | LicensedDataset:
    if name not in DATASETS:
        raise HcmocoError(f"--dataset: unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name]


def resolve_url(url: str, mirror: str | None = None) -> str:
    """`url` with scheme and host replaced by the mirror's (argument, else $HCMOCO_MIRROR)."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")
    if not mirror:
        return url
    m = urlsplit(mirror)
    if m.scheme not in ("http", "https") or not m.netloc:
        raise HcmocoError(f"{MIRROR_ENV}/--mirror: {mirror!r} is not an http(s)://host[:port][/prefix] URL")
    u = urlsplit(url)
    return urlunsplit((m.scheme, m.netloc, m.path.rstrip("/") + u.path, u.query, ""))
