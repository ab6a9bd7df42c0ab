"""Result files of one recording: detection logs, thumbnails, annotated video.

Everything is written incrementally while frames stream through, so a long
video never holds more than one frame and one crop per track in memory.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

JSONL_NAME = "detections.jsonl"
CSV_NAME = "detections.csv"
VIDEO_NAME = "annotated.mp4"
THUMBS_DIR = "thumbs"
CSV_FIELDS = (
    "frame",
    "time_s",
    "class",
    "confidence",
    "track_id",
    "x1",
    "y1",
    "x2",
    "y2",
)
# Kinds of downloadable files, in the order they are listed.
_DOWNLOAD_KINDS = ((CSV_NAME, "csv"), (JSONL_NAME, "jsonl"), (VIDEO_NAME, "video"))
# One colour (BGR) per class id, repeated for models with more classes.
_PALETTE = ((56, 56, 255), (255, 157, 151), (31, 112, 255), (29, 178, 255))
_THUMB_MARGIN = 0.3
_THUMB_MAX_SIDE = 320
_THUMB_MIN_SIDE = 96


@dataclass(frozen=True)
class Detection:
    """One box in one frame, already claimed by a track."""

    class_id: int
    class_name: str
    confidence: float
    track_id: int
    box: tuple[float, float, float, float]

    def row(self, frame: int, time_s: float) -> dict[str, Any]:
        """Return the record written to detections.jsonl and detections.csv."""
        x1, y1, x2, y2 = (round(v, 1) for v in self.box)
        return {
            "frame": frame,
            "time_s": round(time_s, 3),
            "class": self.class_name,
            "confidence": round(self.confidence, 4),
            "track_id": self.track_id,
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
        }


class DetectionLog:
    """Append detections to detections.jsonl and detections.csv as they come."""

    def __init__(self, out_dir: Path) -> None:
        """Create (or truncate) both files in `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        # Both files stay open across frames; `close()` (or the `with`) ends them.
        self._files = ExitStack()
        jsonl = open(out_dir / JSONL_NAME, "w", encoding="utf-8")  # noqa: SIM115
        self._jsonl: IO[str] = self._files.enter_context(jsonl)
        csv_file = open(out_dir / CSV_NAME, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._files.enter_context(csv_file)
        self._csv = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS)
        self._csv.writeheader()

    def write(self, frame: int, time_s: float, detections: list[Detection]) -> None:
        """Append the detections of one frame to both files."""
        for det in detections:
            row = det.row(frame, time_s)
            self._jsonl.write(json.dumps(row) + "\n")
            self._csv.writerow(row)

    def close(self) -> None:
        """Flush and close both files."""
        self._files.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class _TrackStats:
    classes: Counter[str] = field(default_factory=Counter)


class Summary:
    """Tally detections into the `result` object of status.json."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self._tracks: dict[int, _TrackStats] = defaultdict(_TrackStats)
        self._detections: Counter[str] = Counter()
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def add(self, time_s: float, detections: list[Detection]) -> None:
        """Count the detections of one frame shown at `time_s`."""
        for det in detections:
            name = det.class_name
            self._tracks[det.track_id].classes[name] += 1
            self._detections[name] += 1
            self._first.setdefault(name, time_s)
            self._last[name] = time_s

    def track_classes(self) -> dict[int, str]:
        """Return each track's class: the one it was detected as most often."""
        return {
            track: stats.classes.most_common(1)[0][0]
            for track, stats in self._tracks.items()
        }

    def as_result(
        self, frames_processed: int, wall_s: float, model: str
    ) -> dict[str, Any]:
        """Return the `result` object exactly as the README's status.json contract describes it."""
        tracks_per_class = Counter(self.track_classes().values())
        classes = {
            name: {
                "tracks": tracks_per_class.get(name, 0),
                "detections": count,
                "first_s": round(self._first[name], 3),
                "last_s": round(self._last[name], 3),
            }
            for name, count in sorted(self._detections.items())
        }
        return {
            "classes": classes,
            "tracks_total": len(self._tracks),
            "detections_total": sum(self._detections.values()),
            "frames_processed": frames_processed,
            "wall_s": round(wall_s, 2),
            "model": model,
        }


class Thumbnails:
    """Keep the best-confidence crop of every track; write them at the end."""

    def __init__(self, out_dir: Path) -> None:
        """Write into `out_dir/thumbs/` when `save` is called."""
        self._dir = out_dir / THUMBS_DIR
        self._best: dict[int, tuple[float, Frame]] = {}

    def offer(self, frame: Frame, detections: list[Detection]) -> None:
        """Keep a crop of each detection that beats its track's best so far."""
        for det in detections:
            best = self._best.get(det.track_id)
            if best is None or det.confidence > best[0]:
                self._best[det.track_id] = (det.confidence, _crop(frame, det))

    def save(self, track_classes: dict[int, str]) -> list[Path]:
        """Write `thumbs/<class>-<track>.jpg` for every track; return the paths."""
        self._dir.mkdir(parents=True, exist_ok=True)
        written = []
        for track, (_, crop) in sorted(self._best.items()):
            path = self._dir / f"{track_classes.get(track, 'object')}-{track}.jpg"
            if not cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                logger.warning("could not write thumbnail %s", path)
                continue
            written.append(path)
        return written


class AnnotatedVideo:
    """Encode frames with boxes drawn into a browser-playable H.264 mp4.

    OpenCV's wheels cannot write H.264, so PyAV's libx264 encodes: yuv420p,
    even frame sizes, and the index (moov) at the front for progressive play.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        """Open `path` for a video of the given size and frame rate."""
        import av

        self._width = width - width % 2
        self._height = height - height % 2
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._container = av.open(
            str(path), mode="w", options={"movflags": "+faststart"}
        )
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width = self._width
        stream.height = self._height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        self._stream = stream
        self._av = av

    def write(self, frame: Frame, detections: list[Detection]) -> None:
        """Draw `detections` on a copy of `frame` and encode it."""
        image = frame[: self._height, : self._width].copy()
        draw_detections(image, detections)
        video_frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._container.close()


def draw_detections(
    image: Frame, detections: list[Detection], labels: bool = True
) -> None:
    """Draw boxes (and labels) on `image` in place with OpenCV's built-in font."""
    thickness = max(1, round(min(image.shape[:2]) / 300))
    for det in detections:
        colour = _PALETTE[det.class_id % len(_PALETTE)]
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        if not labels:
            continue
        label = f"{det.class_name} {det.track_id} {det.confidence:.2f}"
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - th - base if y1 - th - base >= 0 else y1
        cv2.rectangle(image, (x1, top), (x1 + tw, top + th + base), colour, -1)
        cv2.putText(
            image,
            label,
            (x1, top + th),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def list_thumbnails(rec_dir: Path) -> list[Path]:
    """Return the thumbnails of a recording, sorted by name."""
    folder = rec_dir / THUMBS_DIR
    return sorted(folder.glob("*.jpg")) if folder.is_dir() else []


def list_downloads(rec_dir: Path, rec_id: str) -> list[dict[str, Any]]:
    """Return the `downloads` list of status.json for the files that exist.

    Thumbnail names carry their folder (`thumbs/stop-3.jpg`), so the file route
    must accept one sub-folder.
    """
    files = [(rec_dir / name, name, kind) for name, kind in _DOWNLOAD_KINDS]
    files += [
        (path, f"{THUMBS_DIR}/{path.name}", "thumbnail")
        for path in list_thumbnails(rec_dir)
    ]
    return [
        {
            "name": name,
            "kind": kind,
            "url": f"/api/recordings/{rec_id}/files/{name}",
            "size_bytes": path.stat().st_size,
        }
        for path, name, kind in files
        if path.is_file()
    ]


def _crop(frame: Frame, det: Detection) -> Frame:
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = det.box
    pad_x, pad_y = (x2 - x1) * _THUMB_MARGIN, (y2 - y1) * _THUMB_MARGIN
    left = min(max(0, int(x1 - pad_x)), width - 1)
    top = min(max(0, int(y1 - pad_y)), height - 1)
    right = max(left + 1, min(width, int(x2 + pad_x) + 1))
    bottom = max(top + 1, min(height, int(y2 + pad_y) + 1))
    crop = frame[top:bottom, left:right]

    side = max(crop.shape[:2])
    scale = min(_THUMB_MAX_SIDE, max(_THUMB_MIN_SIDE, side)) / side
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    thumb = cv2.resize(crop, size, interpolation=interpolation).astype(np.uint8)

    box = (
        (x1 - left) * scale,
        (y1 - top) * scale,
        (x2 - left) * scale,
        (y2 - top) * scale,
    )
    shifted = Detection(det.class_id, det.class_name, det.confidence, det.track_id, box)
    draw_detections(thumb, [shifted], labels=False)
    return thumb
