"""Probe an uploaded video: decode it for real and check it against limits."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from .errors import InvalidUploadError, UploadTooLargeError

logger = logging.getLogger(__name__)

# Frames read at the tail of a video to show the file is complete.
_TAIL_FRAMES = 5
# Container tags that OpenCV reports, mapped to the codec name people know.
_CODEC_NAMES = {
    "avc1": "h264",
    "avc3": "h264",
    "h264": "h264",
    "x264": "h264",
    "hvc1": "hevc",
    "hev1": "hevc",
    "hevc": "hevc",
    "h265": "hevc",
    "mp4v": "mpeg4",
    "fmp4": "mpeg4",
    "xvid": "mpeg4",
    "divx": "mpeg4",
    "vp80": "vp8",
    "vp08": "vp8",
    "vp90": "vp9",
    "vp09": "vp9",
    "av01": "av1",
    "mjpg": "mjpeg",
}


@dataclass(frozen=True)
class VideoLimits:
    """What an upload may be; anything outside is refused."""

    max_bytes: int = 2 * 1024**3
    max_duration_s: float = 3600.0
    min_fps: float = 1.0
    max_fps: float = 240.0
    max_width: int = 7680
    max_height: int = 4320
    min_frames: int = 1


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video that decoded cleanly."""

    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    codec: str
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """Return the `video` object of status.json."""
        return asdict(self)


def probe(path: Path, limits: VideoLimits | None = None) -> VideoInfo:
    """Decode `path` far enough to trust it and return its facts.

    The first frame and a frame near the end are decoded, so garbage and
    truncated files are refused, not only files with a wrong header. When the
    container does not state a frame count, every frame is counted.

    Args:
        path: the uploaded file.
        limits: what is accepted; the defaults when omitted.

    Raises:
        InvalidUploadError: the file is not a readable video or breaks a limit.
        UploadTooLargeError: the file is larger than `limits.max_bytes`.
    """
    limits = limits or VideoLimits()
    size = _check_size(path, limits)

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise InvalidUploadError(
                f"File {path.name!r} is not a video that can be decoded."
            )
        info = _read_info(cap, path, size)
        _check_limits(info, path, limits)
    finally:
        cap.release()

    logger.debug("probed %s: %s", path, info)
    return info


def fourcc_name(code: float) -> str:
    """Turn OpenCV's FOURCC number into a readable codec name such as "h264"."""
    value = int(code)
    tag = "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4))
    tag = tag.strip("\x00 ").lower()
    if not tag.isprintable() or not tag:
        return "unknown"
    return _CODEC_NAMES.get(tag, tag)


def _check_size(path: Path, limits: VideoLimits) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidUploadError(f"File {path.name!r} does not exist.") from None
    if size == 0:
        raise InvalidUploadError(f"File {path.name!r} is empty.")
    if size > limits.max_bytes:
        raise UploadTooLargeError(
            f"File {path.name!r} has {size} bytes; the limit is "
            f"{limits.max_bytes} bytes."
        )
    return size


def _read_info(cap: cv2.VideoCapture, path: Path, size: int) -> VideoInfo:
    ok, frame = cap.read()
    if not ok or frame is None:
        raise InvalidUploadError(f"File {path.name!r} has no frames that decode.")
    height, width = frame.shape[:2]
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not math.isfinite(fps) or fps <= 0:
        raise InvalidUploadError(f"File {path.name!r} does not state a frame rate.")

    stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    frames = _count_frames(cap) + 1 if stated <= 0 else stated
    if stated > 0:
        _check_tail(cap, path, stated)

    return VideoInfo(
        frames=frames,
        fps=round(fps, 3),
        width=int(width),
        height=int(height),
        duration_s=round(frames / fps, 3),
        codec=fourcc_name(cap.get(cv2.CAP_PROP_FOURCC)),
        size_bytes=size,
    )


def _count_frames(cap: cv2.VideoCapture) -> int:
    count = 0
    while cap.grab():
        count += 1
    return count


def _check_tail(cap: cv2.VideoCapture, path: Path, stated: int) -> None:
    if stated <= 1:
        return
    start = max(1, stated - _TAIL_FRAMES)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    for _ in range(stated - start):
        ok, frame = cap.read()
        if ok and frame is not None:
            return
    raise InvalidUploadError(
        f"File {path.name!r} states {stated} frames but none of the last "
        f"{stated - start} decode; it looks truncated."
    )


def _check_limits(info: VideoInfo, path: Path, limits: VideoLimits) -> None:
    name = path.name
    if info.frames < limits.min_frames:
        raise InvalidUploadError(
            f"Video {name!r} has {info.frames} frames; at least "
            f"{limits.min_frames} are needed."
        )
    if not limits.min_fps <= info.fps <= limits.max_fps:
        raise InvalidUploadError(
            f"Video {name!r} runs at {info.fps!r} frames per second; expected "
            f"{limits.min_fps:g} to {limits.max_fps:g}."
        )
    if info.width > limits.max_width or info.height > limits.max_height:
        raise InvalidUploadError(
            f"Video {name!r} is {info.width}x{info.height} pixels; the limit is "
            f"{limits.max_width}x{limits.max_height}."
        )
    if info.duration_s > limits.max_duration_s:
        raise InvalidUploadError(
            f"Video {name!r} lasts {info.duration_s:g} s; the limit is "
            f"{limits.max_duration_s:g} s."
        )
