"""Shared helpers of the pipeline tests: data paths and clip builders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from server.voc import load_voc

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
DASHCAM = DATA / "videos" / "solidWhiteRight.mp4"
ROAD_SIGNS = DATA / "road-signs"
WEIGHTS = REPO / "models" / "signwatch-signs.pt"

# Validation-split images with one large sign each, two per class, that the
# shipped model detects clearly on its own.
SIGN_IMAGES: dict[str, tuple[int, ...]] = {
    "speedlimit": (629, 177),
    "crosswalk": (165, 178),
    "trafficlight": (164, 46),
    "stop": (54, 52),
}

Image = npt.NDArray[np.uint8]


def write_clip(path: Path, frames: Iterable[Image], fps: float = 25.0) -> Path:
    """Write BGR frames of one size to an mp4 (MPEG-4 part 2) with OpenCV."""
    writer: cv2.VideoWriter | None = None
    for frame in frames:
        if writer is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
        writer.write(frame)
    if writer is not None:
        writer.release()
    return path


def gradient_clip(
    path: Path, frames: int = 60, size: tuple[int, int] = (160, 120)
) -> Path:
    """Write a small clip whose frames differ (a moving bright bar)."""
    width, height = size
    images = []
    for i in range(frames):
        image = np.full((height, width, 3), 40, np.uint8)
        x = (i * 3) % (width - 10)
        image[:, x : x + 10] = 220
        images.append(image)
    return write_clip(path, images)


def sign_clip(
    path: Path,
    indices: Sequence[int],
    hold: int = 8,
    gap: int = 2,
    size: int = 416,
) -> Path:
    """Write a clip that shows each road-sign image for `hold` frames.

    Each image is centred on a grey square canvas; `gap` grey frames separate
    consecutive images so each sign starts a new track.
    """
    by_index = {sample.index: sample.image for sample in load_voc(ROAD_SIGNS)}
    blank = np.full((size, size, 3), 114, np.uint8)
    frames: list[Image] = []
    for index in indices:
        canvas = blank.copy()
        image = cv2.imread(str(by_index[index]))
        height, width = image.shape[:2]
        scale = min(1.0, size / max(height, width))
        image = cv2.resize(image, (int(width * scale), int(height * scale)))
        top = (size - image.shape[0]) // 2
        left = (size - image.shape[1]) // 2
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
        frames += [canvas] * hold + [blank] * gap
    return write_clip(path, frames)


def read_frames(path: Path) -> list[Image]:
    """Every frame of a video, decoded with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
