"""Training and evaluation recipe for the shipped traffic-sign detector.

The detector is ultralytics' YOLOv5n (anchor-free "v5u" head) whose backbone and
neck start from COCO-pretrained weights; only the detection head starts fresh.
Everything runs offline: no downloads, no plots (plots fetch fonts).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import offline
from .config import MODEL_IMGSZ
from .errors import DatasetError, ModelError
from .voc import (
    CLASSES,
    class_counts,
    load_voc,
    repeat_factors,
    split_blocks,
    write_yolo_dataset,
)

logger = logging.getLogger(__name__)

ARCH = "yolov5n.yaml"
# Layers model.0..model.23 of the pretrained state dict match ultralytics'
# yolov5n.yaml; model.24 (the COCO head) does not.
_HEAD_PREFIX = "model.24."


@dataclass
class TrainConfig:
    """Settings of one training run."""

    data: Path
    out: Path
    pretrained: Path | None
    imgsz: int = 320
    epochs: int = 60
    hours: float | None = None
    batch: int = 16
    workers: int = 2
    device: str = "cpu"
    seed: int = 0
    limit: int | None = None
    # Repeat-factor sampling threshold (0 disables); 1.0 shows images with
    # traffic lights and stop signs 3 times and crosswalks twice per epoch.
    repeat_threshold: float = 1.0
    # Continue from an earlier checkpoint (say at a new image size) instead of
    # building a fresh model from the pretrained backbone.
    start: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_dataset(
    voc_root: Path,
    cache: Path,
    limit: int | None = None,
    repeat_threshold: float = 0.0,
) -> Path:
    """Convert a VOC folder into the YOLO layout under `cache`; return data.yaml.

    Args:
        voc_root: VOC folder with `images/` and `annotations/`.
        cache: where the YOLO layout is written (replaced if present).
        limit: keep only this many samples per split (for smoke tests).
        repeat_threshold: repeat-factor sampling of the training images.
    """
    samples = load_voc(voc_root)
    train, val = split_blocks(samples)
    if not train or not val:
        raise DatasetError(
            f"Split of {str(voc_root)!r} left {len(train)} train and {len(val)} "
            "validation images; both must be non-empty."
        )
    if limit is not None:
        train, val = train[:limit], val[:limit]
    logger.info("train boxes per class: %s", dict(class_counts(train)))
    logger.info("val boxes per class: %s", dict(class_counts(val)))
    repeats = repeat_factors(train, repeat_threshold)
    return write_yolo_dataset(train, val, cache, repeats=repeats)


def build_initial_checkpoint(pretrained: Path | None, out: Path) -> Path:
    """Build YOLOv5n for our classes, load the pretrained backbone and neck, save it.

    Ultralytics only keeps weights across `train()` when it starts from a
    checkpoint file, so the initialised model is saved as one.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(ARCH, nc=len(CLASSES), verbose=False)  # type: ignore[no-untyped-call]
    if pretrained is not None:
        if not pretrained.is_file():
            raise ModelError(f"Pretrained weights {str(pretrained)!r} do not exist.")
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        body = {
            k: v.float() for k, v in state.items() if not k.startswith(_HEAD_PREFIX)
        }
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith(_HEAD_PREFIX) for k in missing):
            raise ModelError(
                f"Pretrained weights {str(pretrained)!r} do not match {ARCH}: "
                f"{len(unexpected)} unexpected, {len(missing)} missing tensors."
            )
        logger.info("loaded %d pretrained tensors (head left fresh)", len(body))
    model.names = dict(enumerate(CLASSES))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {}, "epoch": -1, "date": None}, out)
    return out


def train(cfg: TrainConfig) -> Path:
    """Run the full recipe and return the path of the best weights."""
    offline.configure()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    data_yaml = prepare_dataset(
        cfg.data, cfg.out / "dataset", cfg.limit, cfg.repeat_threshold
    )
    if cfg.start is not None:
        if not cfg.start.is_file():
            raise ModelError(f"Starting checkpoint {str(cfg.start)!r} does not exist.")
        init = cfg.start
    else:
        init = build_initial_checkpoint(cfg.pretrained, cfg.out / "init.pt")
    args: dict[str, Any] = dict(
        data=str(data_yaml),
        imgsz=cfg.imgsz,
        epochs=cfg.epochs,
        batch=cfg.batch,
        workers=cfg.workers,
        device=cfg.device,
        seed=cfg.seed,
        project=str(cfg.out.resolve()),
        name="run",
        exist_ok=True,
        plots=False,
        amp=False,
        verbose=False,
        patience=100,
    )
    if cfg.hours:
        args["time"] = cfg.hours
    args.update(cfg.extra)
    started = time.monotonic()
    model = YOLO(str(init))
    model.train(**args)
    best = cfg.out / "run" / "weights" / "best.pt"
    logger.info(
        "training took %.1f min; best weights %s",
        (time.monotonic() - started) / 60,
        best,
    )
    return best


@dataclass
class EvalReport:
    """Validation metrics of one set of weights on one data set."""

    weights: str
    data: str
    imgsz: int
    images: int
    map50: float
    map50_95: float
    per_class: dict[str, dict[str, float]]
    ms_per_image: float

    def as_table(self) -> str:
        """Render as a Markdown table."""
        rows = [
            "| class | boxes | mAP50 | mAP50-95 |",
            "|---|---:|---:|---:|",
        ]
        for name, m in self.per_class.items():
            rows.append(
                f"| {name} | {int(m['boxes'])} | {m['map50']:.3f} | {m['map50_95']:.3f} |"
            )
        rows.append(f"| **all** | | **{self.map50:.3f}** | **{self.map50_95:.3f}** |")
        return "\n".join(rows)


def evaluate(
    weights: Path,
    voc_root: Path,
    cache: Path,
    imgsz: int = MODEL_IMGSZ,
    device: str = "cpu",
    split: str = "val",
) -> EvalReport:
    """Evaluate one set of weights; see `evaluate_many`."""
    return evaluate_many([weights], voc_root, cache, imgsz, device, split)[0]


def evaluate_many(
    weights: Sequence[Path],
    voc_root: Path,
    cache: Path,
    imgsz: int = MODEL_IMGSZ,
    device: str = "cpu",
    split: str = "val",
) -> list[EvalReport]:
    """Evaluate weights on a VOC folder with ultralytics' validator.

    The data set is converted once and shared by every checkpoint.

    Args:
        weights: `.pt` checkpoints, all checked before any is evaluated.
        voc_root: VOC folder; its block split decides which images are used.
        cache: scratch folder for the YOLO layout.
        split: "val" for the validation blocks, "all" for every image.
    """
    offline.configure()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    for path in weights:
        if not path.is_file():
            raise ModelError(f"Weights {str(path)!r} do not exist.")
    samples = load_voc(voc_root)
    if split == "all":
        data_yaml = write_yolo_dataset(samples, samples, cache)
        images = len(samples)
    else:
        train_set, val = split_blocks(samples)
        data_yaml = write_yolo_dataset(train_set[:1], val, cache)
        images = len(val)
    reports = []
    for path in weights:
        metrics = YOLO(str(path)).val(
            data=str(data_yaml),
            imgsz=imgsz,
            device=device,
            plots=False,
            verbose=False,
            batch=16,
            workers=0,
            project=str(cache.resolve()),
            name="val",
            exist_ok=True,
        )
        reports.append(_report(path, voc_root, imgsz, images, metrics))
    return reports


def _report(
    weights: Path, voc_root: Path, imgsz: int, images: int, metrics: Any
) -> EvalReport:
    names = metrics.names
    per_class = {}
    counts = metrics.nt_per_class if hasattr(metrics, "nt_per_class") else None
    for i, cls in enumerate(metrics.ap_class_index):
        ap50, ap = metrics.box.class_result(i)[2:4]
        boxes = float(counts[cls]) if counts is not None else float("nan")
        per_class[names[int(cls)]] = {
            "map50": float(ap50),
            "map50_95": float(ap),
            "boxes": boxes,
        }
    return EvalReport(
        weights=str(weights),
        data=str(voc_root),
        imgsz=imgsz,
        images=images,
        map50=float(metrics.box.map50),
        map50_95=float(metrics.box.map),
        per_class=per_class,
        ms_per_image=float(metrics.speed.get("inference", 0.0)),
    )


def comparison_table(reports: list[EvalReport]) -> str:
    """One Markdown row per set of weights: the means, each class's mAP50 and
    the weakest class, the figure a "no class below X" target is judged on."""
    classes = list(dict.fromkeys(name for r in reports for name in r.per_class))
    rows = [
        "| weights | mAP50 | mAP50-95 | " + " | ".join(classes) + " | weakest class |",
        "|---|---:|---:|" + "---:|" * (len(classes) + 1),
    ]
    for r in reports:
        # A class without boxes in this data has no AP: shown as "-", not 0.
        scores = {n: r.per_class[n]["map50"] for n in classes if n in r.per_class}
        cells = " | ".join(f"{scores[n]:.3f}" if n in scores else "-" for n in classes)
        weakest = min(scores.values(), default=float("nan"))
        rows.append(
            f"| {r.weights} | {r.map50:.3f} | {r.map50_95:.3f} | {cells} | {weakest:.3f} |"
        )
    return "\n".join(rows)


def report_json(report: EvalReport | list[EvalReport]) -> str:
    """Serialise a report (or a list of them) for `signwatch evaluate --json`."""
    if isinstance(report, list):
        return json.dumps([r.__dict__ for r in report], indent=2)
    return json.dumps(report.__dict__, indent=2)


def strip_checkpoint(checkpoint: Path, out: Path) -> Path:
    """Drop the optimizer and EMA copies from a training checkpoint (a few MB left)."""
    import shutil

    offline.configure()
    from ultralytics.utils.torch_utils import strip_optimizer

    shutil.copy2(checkpoint, out)
    strip_optimizer(str(out))
    return out
