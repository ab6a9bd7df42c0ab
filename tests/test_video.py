"""Tests of server/video.py: probing real, broken and out-of-limit videos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from helpers_video import DASHCAM, gradient_clip

from server.errors import InvalidUploadError, UploadTooLargeError
from server.video import VideoLimits, fourcc_name, probe


def test_probe_reads_the_dashcam_clip() -> None:
    info = probe(DASHCAM)

    assert info.as_dict() == {
        "frames": 221,
        "fps": 25.0,
        "width": 960,
        "height": 540,
        "duration_s": 8.84,
        "codec": "h264",
        "size_bytes": DASHCAM.stat().st_size,
    }


def test_probe_reads_an_mpeg4_clip(tmp_path: Path) -> None:
    clip = gradient_clip(tmp_path / "clip.mp4", frames=30)

    info = probe(clip)

    assert (info.frames, info.width, info.height) == (30, 160, 120)
    assert info.codec == "mpeg4"


def _text_file(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("This is not a video.\n" * 50)
    return path


def _empty_file(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.touch()
    return path


def _truncated(folder: Path) -> Path:
    data = DASHCAM.read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: len(data) * 30 // 100])
    return path


def _zero_frames(folder: Path) -> Path:
    path = folder / "zero.mp4"
    fourcc = cv2.VideoWriter.fourcc(*"mp4v")
    cv2.VideoWriter(str(path), fourcc, 25.0, (64, 48)).release()
    return path


def _missing(folder: Path) -> Path:
    return folder / "missing.mp4"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_text_file, "not a video"),
        (_empty_file, "is empty"),
        (_truncated, "truncated"),
        (_zero_frames, "not a video"),
        (_missing, "does not exist"),
    ],
    ids=["text-file", "empty", "truncated-30pct", "zero-frames", "missing"],
)
def test_probe_refuses_broken_files(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)

    with pytest.raises(InvalidUploadError, match=message) as caught:
        probe(path)

    assert caught.value.code == "invalid_upload"
    assert str(caught.value).endswith(".")


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (VideoLimits(max_duration_s=5.0), "lasts 8.84 s; the limit is 5 s"),
        (VideoLimits(min_fps=30.0), "runs at 25.0 frames per second"),
        (VideoLimits(max_fps=24.0), "expected 1 to 24"),
        (VideoLimits(max_width=640), "is 960x540 pixels"),
        (VideoLimits(max_height=480), "is 960x540 pixels"),
        (VideoLimits(min_frames=1000), "has 221 frames; at least 1000"),
    ],
    ids=[
        "too-long",
        "fps-too-low",
        "fps-too-high",
        "too-wide",
        "too-tall",
        "too-few-frames",
    ],
)
def test_probe_enforces_limits(limits: VideoLimits, message: str) -> None:
    with pytest.raises(InvalidUploadError, match=message):
        probe(DASHCAM, limits)


def test_probe_refuses_too_large_files_before_decoding() -> None:
    with pytest.raises(UploadTooLargeError, match="the limit is 1000 bytes") as caught:
        probe(DASHCAM, VideoLimits(max_bytes=1000))

    assert caught.value.status_code == 413


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("avc1", "h264"),
        ("hev1", "hevc"),
        ("mp4v", "mpeg4"),
        ("VP90", "vp9"),
        ("abcd", "abcd"),
    ],
    ids=["avc1", "hev1", "mp4v", "vp9-upper", "unknown-tag"],
)
def test_fourcc_name(tag: str, name: str) -> None:
    assert fourcc_name(cv2.VideoWriter.fourcc(*tag)) == name


def test_fourcc_name_of_zero_is_unknown() -> None:
    assert fourcc_name(0.0) == "unknown"
