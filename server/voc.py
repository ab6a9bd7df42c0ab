"""Pascal VOC road-sign data: parsing, block-wise splitting and YOLO layout.

The road-sign set mixes close-ups with runs of consecutive dashcam frames, so a
random split would leak near-duplicates into validation. Splits here are made of
contiguous index blocks, with a guard band of excluded images around each block.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("speedlimit", "crosswalk", "trafficlight", "stop")

# Chosen from the per-block class counts so every class has 20+ validation
# boxes; traffic lights and stop signs are rare after index 400.
DEFAULT_VAL_BLOCKS: tuple[tuple[int, int], ...] = (
    (40, 60),
    (160, 180),
    (300, 320),
    (460, 480),
    (620, 640),
    (700, 720),
)
GUARD = 2

_INDEX = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class Box:
    """One labelled object in pixel coordinates."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class Sample:
    """One annotated image of a VOC folder."""

    index: int
    image: Path
    width: int
    height: int
    boxes: tuple[Box, ...]


def load_voc(root: Path) -> list[Sample]:
    """Read every `annotations/*.xml` of a VOC folder, sorted by image index.

    Args:
        root: folder holding `images/` and `annotations/`.
    """
    ann_dir = root / "annotations"
    if not ann_dir.is_dir():
        raise DatasetError(f"Expected a VOC folder with annotations/, got {root!r}.")
    samples = [_parse_annotation(path, root) for path in ann_dir.glob("*.xml")]
    if not samples:
        raise DatasetError(f"No annotations found under {str(ann_dir)!r}.")
    return sorted(samples, key=lambda s: s.index)


def _parse_annotation(path: Path, root: Path) -> Sample:
    tree = ET.parse(path).getroot()
    filename = tree.findtext("filename") or f"{path.stem}.jpg"
    size = tree.find("size")
    width = int(size.findtext("width", "0")) if size is not None else 0
    height = int(size.findtext("height", "0")) if size is not None else 0
    boxes = []
    for obj in tree.findall("object"):
        bnd = obj.find("bndbox")
        if bnd is None:
            continue
        coords = [float(bnd.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append(Box(obj.findtext("name", "").strip(), *coords))
    match = _INDEX.search(path.stem)
    index = int(match.group(1)) if match else -1
    return Sample(index, root / "images" / filename, width, height, tuple(boxes))


def split_blocks(
    samples: list[Sample],
    val_blocks: tuple[tuple[int, int], ...] = DEFAULT_VAL_BLOCKS,
    guard: int = GUARD,
) -> tuple[list[Sample], list[Sample]]:
    """Split into (train, val) by contiguous index blocks `[start, stop)`.

    Images within `guard` indices of a validation block are left out of both
    sets, since neighbouring dashcam frames are near-duplicates.
    """
    train, val = [], []
    for sample in samples:
        if any(lo <= sample.index < hi for lo, hi in val_blocks):
            val.append(sample)
        elif not any(lo - guard <= sample.index < hi + guard for lo, hi in val_blocks):
            train.append(sample)
    return train, val


def class_counts(samples: list[Sample]) -> Counter[str]:
    """Count boxes per class name."""
    return Counter(box.name for s in samples for box in s.boxes)


def repeat_factors(samples: list[Sample], threshold: float) -> list[int]:
    """Copies of each sample for repeat-factor sampling (as in LVIS).

    A class seen in a fraction f of the images gets factor sqrt(threshold / f)
    (at least 1); an image takes the largest factor of its classes, rounded.
    Rare classes (traffic lights, stop signs) then appear in more mosaics
    without changing the validation set. A threshold of 0 disables it.
    """
    if threshold <= 0 or not samples:
        return [1] * len(samples)
    seen: Counter[str] = Counter()
    for sample in samples:
        seen.update({box.name for box in sample.boxes})
    factor = {
        name: max(1.0, math.sqrt(threshold * len(samples) / count))
        for name, count in seen.items()
    }
    return [
        round(max((factor[box.name] for box in sample.boxes), default=1.0))
        for sample in samples
    ]


def write_yolo_dataset(
    train: list[Sample],
    val: list[Sample],
    out: Path,
    classes: tuple[str, ...] = CLASSES,
    repeats: list[int] | None = None,
) -> Path:
    """Write the YOLO layout (images, labels, data.yaml) and return data.yaml.

    Images are linked (or copied where links are not allowed), never re-encoded.
    `repeats[i]` copies of `train[i]` are written (see `repeat_factors`).
    """
    if out.exists():
        shutil.rmtree(out)
    if repeats is not None and len(repeats) != len(train):
        raise DatasetError(f"{len(repeats)} repeat factors for {len(train)} images.")
    for split, samples in (("train", train), ("val", val)):
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        counts = repeats if split == "train" and repeats else [1] * len(samples)
        for sample, count in zip(samples, counts, strict=True):
            for copy in range(count):
                _write_sample(sample, out, split, classes, copy)
    data_yaml = out / "data.yaml"
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(classes))
    data_yaml.write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    logger.info(
        "wrote yolo dataset to %s (%d train images as %d files, %d val)",
        out,
        len(train),
        sum(repeats) if repeats else len(train),
        len(val),
    )
    return data_yaml


def _write_sample(
    sample: Sample, out: Path, split: str, classes: tuple[str, ...], copy: int = 0
) -> None:
    if not sample.image.is_file():
        raise DatasetError(
            f"Image {str(sample.image)!r} named by an annotation is missing."
        )
    stem = sample.image.stem if copy == 0 else f"{sample.image.stem}.r{copy}"
    target = out / "images" / split / f"{stem}{sample.image.suffix}"
    try:
        target.symlink_to(sample.image.resolve())
    except OSError:
        shutil.copy2(sample.image, target)
    lines = []
    for box in sample.boxes:
        if box.name not in classes:
            raise DatasetError(
                f"Unknown class {box.name!r}; expected one of {classes}."
            )
        lines.append(
            _yolo_line(box, classes.index(box.name), sample.width, sample.height)
        )
    (out / "labels" / split / f"{stem}.txt").write_text("".join(lines))


def _yolo_line(box: Box, cls: int, width: int, height: int) -> str:
    cx = (box.xmin + box.xmax) / 2 / width
    cy = (box.ymin + box.ymax) / 2 / height
    w = (box.xmax - box.xmin) / width
    h = (box.ymax - box.ymin) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
