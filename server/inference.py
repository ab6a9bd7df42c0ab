"""Run a sign detector over a video: decode, batch, detect, track, write results.

The frame loop knows nothing about ultralytics: it drives any `Detector`. The
real one, `YoloDetector`, imports ultralytics only when it is built, so the
web server can import this module without paying for torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, cast

import cv2
import numpy as np

from . import offline
from .config import MODEL_IMGSZ
from .errors import BadRequestError, InvalidUploadError, ModelError, SignwatchError
from .results import (
    CSV_NAME,
    JSONL_NAME,
    THUMBS_DIR,
    VIDEO_NAME,
    AnnotatedVideo,
    Detection,
    DetectionLog,
    Frame,
    Summary,
    Thumbnails,
)
from .voc import CLASSES

__all__ = [
    "BACKENDS",
    "Cancelled",
    "Detection",
    "Detector",
    "FakeDetector",
    "InferenceOptions",
    "YoloDetector",
    "run_inference",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ProgressFn = Callable[[int, int, float, float | None], None]
StopFn = Callable[[], bool]

# Inference engines `YoloDetector` can run the weights on; all but "torch"
# use an export made once and cached. "auto" is "onnx" on a CPU when ONNX
# Runtime is installed (1.5x ultralytics' predict in bench/), else "torch".
BACKENDS = ("auto", "torch", "onnx", "openvino")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?|\d+(,\d+)*)$")
_PROGRESS_INTERVAL_S = 0.25
_DEFAULT_EXPORTS = Path(__file__).resolve().parent.parent / ".cache" / "exports"


class Cancelled(SignwatchError):
    """The run was stopped because `should_stop()` said so."""

    status_code = 409
    code = "cancelled"


@dataclass(frozen=True)
class InferenceOptions:
    """Per-recording settings of a detection run; checked when built.

    Raises:
        BadRequestError: a value is out of range or of the wrong type.
    """

    imgsz: int = MODEL_IMGSZ
    conf: float = 0.25
    stride: int = 1
    batch: int = 4
    device: str = "cpu"
    annotate: bool = False
    tracker: str = "bytetrack.yaml"

    def __post_init__(self) -> None:
        _check_int("imgsz", self.imgsz, 32, 1920)
        if self.imgsz % 32:
            raise BadRequestError(
                f"Option 'imgsz' must be a multiple of 32, got {self.imgsz!r}."
            )
        _check_number("conf", self.conf, 0.01, 0.99)
        _check_int("stride", self.stride, 1, 1000)
        _check_int("batch", self.batch, 1, 64)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise BadRequestError(
                f"Option 'device' must be 'cpu', 'cuda', 'cuda:N' or 'N', "
                f"got {self.device!r}."
            )
        if not isinstance(self.annotate, bool):
            raise BadRequestError(
                f"Option 'annotate' must be true or false, got {self.annotate!r}."
            )
        if not isinstance(self.tracker, str) or not self.tracker.endswith(".yaml"):
            raise BadRequestError(
                f"Option 'tracker' must name a .yaml file, got {self.tracker!r}."
            )

    @classmethod
    def from_form(
        cls, form: Mapping[str, str], base: InferenceOptions | None = None
    ) -> InferenceOptions:
        """Build options from form fields (strings); absent fields keep `base`.

        Only `imgsz`, `conf`, `stride`, `batch` and `annotate` are read: the
        device and tracker are server settings, not per-upload choices.
        """
        base = base or cls()
        return cls(
            imgsz=_parse(form, "imgsz", int, base.imgsz),
            conf=_parse(form, "conf", float, base.conf),
            stride=_parse(form, "stride", int, base.stride),
            batch=_parse(form, "batch", int, base.batch),
            annotate=_parse(form, "annotate", _parse_bool, base.annotate),
            device=base.device,
            tracker=base.tracker,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the `options` object of status.json."""
        return {
            "imgsz": self.imgsz,
            "conf": self.conf,
            "stride": self.stride,
            "batch": self.batch,
            "device": self.device,
            "annotate": self.annotate,
        }


class Detector(Protocol):
    """Finds and tracks signs in batches of consecutive BGR frames."""

    @property
    def name(self) -> str:
        """Name of the model, reported as `result.model`."""
        ...

    def reset(self) -> None:
        """Forget every track; the next frame starts a new video."""
        ...

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Return the tracked detections of each frame, in order."""
        ...


class FakeDetector:
    """A fast, deterministic detector for tests.

    Sign number k (k = 0, 1, ...) appears in frames `k * period` to
    `k * period + visible - 1` of what the detector is shown, as class
    `CLASSES[k % 4]` with track id k + 1. Counting is by frames received, so a
    stride changes which signs are seen, as it would with a real model.
    """

    def __init__(
        self,
        period: int = 10,
        visible: int = 6,
        delay_s: float = 0.0,
        name: str = "fake.pt",
    ) -> None:
        """Set up the pattern; `delay_s` is slept per frame to mimic a model."""
        self.period = period
        self.visible = visible
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []
        self._name = name
        self._seen = 0

    @property
    def name(self) -> str:
        """Name of the fake model."""
        return self._name

    def reset(self) -> None:
        """Start counting frames from zero again."""
        self._seen = 0

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Return the scripted detections of each frame."""
        self.batch_sizes.append(len(frames))
        if self.delay_s:
            time.sleep(self.delay_s * len(frames))
        found = [self._frame_detections(frame) for frame in frames]
        return found

    def _frame_detections(self, frame: Frame) -> list[Detection]:
        sign, phase = divmod(self._seen, self.period)
        self._seen += 1
        if phase >= self.visible:
            return []
        height, width = frame.shape[:2]
        side = max(4.0, min(width, height) / 5)
        x1 = min(width - side, width * 0.1 + phase * 2.0)
        y1 = height * 0.2
        return [
            Detection(
                class_id=sign % len(CLASSES),
                class_name=CLASSES[sign % len(CLASSES)],
                confidence=round(0.5 + 0.05 * phase, 2),
                track_id=sign + 1,
                box=(x1, y1, x1 + side, y1 + side),
            )
        ]


class YoloDetector:
    """Ultralytics YOLO weights, batched predict, and ByteTrack across frames.

    Prediction runs on whole batches; the tracker then walks the batch frame by
    frame. That is how ultralytics' own `track` mode works inside, minus its
    one-frame-at-a-time loop. Each returned detection keeps the model's own box
    and confidence and gains the id of the track that claimed it; detections
    no confirmed track claims (one-frame flickers) are dropped, as in
    ultralytics' `track` mode.

    On the CPU the default backend is an ONNX export run by ONNX Runtime with
    one thread per worker and ultralytics' own letterbox and NMS: its boxes
    match the torch model's, 1.6x faster end to end on a 2-core machine.
    """

    def __init__(
        self,
        weights: Path,
        options: InferenceOptions,
        backend: str = "auto",
        export_dir: Path | None = None,
        workers: int | None = None,
    ) -> None:
        """Load `weights` and the tracker settings named by `options.tracker`.

        Args:
            weights: an ultralytics `.pt` checkpoint.
            options: image size, confidence threshold, device and tracker.
            backend: one of `BACKENDS`; "onnx" and "openvino" export the
                weights once (offline) into `export_dir` and reuse the export.
            export_dir: cache of exports; `.cache/exports` of the checkout.
            workers: model copies that predict parts of a batch in parallel
                threads, each with an equal share of the CPU cores but one
                (one core is left to the decoder). By default one per core
                with ONNX Runtime (2.24x `predict` against 1.43x for one, on
                the idle 2-core machine of bench/), one with torch or OpenVINO.

        Raises:
            ModelError: the weights are missing or cannot be loaded or exported.
        """
        if backend not in BACKENDS:
            raise ModelError(f"Backend must be one of {BACKENDS}, got {backend!r}.")
        if not weights.is_file():
            raise ModelError(f"Weights {str(weights)!r} do not exist.")
        offline.configure()

        self.backend = _resolve_backend(backend, options.device)
        self._weights = weights
        self._options = options
        model = load_yolo(weights)
        self.class_names: dict[int, str] = {
            int(k): str(v) for k, v in model.names.items()
        }
        count = workers or _default_workers(self.backend)
        self._models: list[Any] = [model]
        if self.backend != "torch":
            path = _export(weights, self.backend, options.imgsz, export_dir)
            if self.backend == "onnx":
                threads = _threads_per_worker(count)
                self._models = [
                    _OnnxModel(path, options, threads) for _ in range(count)
                ]
            else:
                self._models = [load_yolo(path) for _ in range(count)]
        else:
            self._models += [load_yolo(weights) for _ in range(count - 1)]
        self._pool = (
            ThreadPoolExecutor(count, "signwatch-predict") if count > 1 else None
        )
        self._tracker_cfg = _tracker_config(options.tracker)
        self._tracker: Any = None
        self._warm_up(count)
        self.reset()
        logger.info(
            "loaded %s on %s (%s, %d workers)",
            weights.name,
            options.device,
            self.backend,
            count,
        )

    @property
    def name(self) -> str:
        """File name of the weights, e.g. "signwatch-signs.pt"."""
        return self._weights.name

    def reset(self) -> None:
        """Start a fresh tracker, so track ids begin at 1 again."""
        from ultralytics.trackers.byte_tracker import BYTETracker

        self._tracker = BYTETracker(self._tracker_cfg)  # type: ignore[no-untyped-call]

    def _warm_up(self, workers: int) -> None:
        # The first predict builds each predictor (and compiles exports); do it
        # now so a run's wall time and first progress report exclude it.
        blank = np.zeros((self._options.imgsz, self._options.imgsz, 3), np.uint8)
        self.predict([blank] * workers)

    def predict(self, frames: Sequence[Frame]) -> list[Any]:
        """Return ultralytics' raw `Boxes` of each frame (no tracking).

        With several workers, the batch is cut into contiguous parts that are
        predicted at the same time, each by its own model copy (ultralytics'
        predictors are not thread-safe, so copies are not shared).
        """
        self._share_cores()
        parts = _split(frames, len(self._models))
        if self._pool is None or len(parts) == 1:
            return self._predict_part(self._models[0], parts[0])
        done = self._pool.map(self._predict_part, self._models, parts)
        return [boxes for part in done for boxes in part]

    def _share_cores(self) -> None:
        # Ultralytics sets torch to cores - 1 threads when a predictor starts
        # (torch_utils.select_device); share those among the workers instead.
        if self._options.device != "cpu":
            return
        import torch

        threads = _threads_per_worker(len(self._models))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def _predict_part(self, model: Any, frames: Sequence[Frame]) -> list[Any]:
        if isinstance(model, _OnnxModel):
            return model.predict(frames)
        results = model.predict(
            list(frames),
            imgsz=self._options.imgsz,
            conf=self._options.conf,
            device=self._options.device,
            batch=len(frames),
            verbose=False,
        )
        return [result.boxes.cpu().numpy() for result in results]

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Predict the batch at once, then track it frame by frame."""
        found = []
        for frame, boxes in zip(frames, self.predict(frames), strict=True):
            tracks = self._tracker.update(boxes, frame)
            found.append(self._claimed(boxes, tracks))
        return found

    def _claimed(self, boxes: Any, tracks: Any) -> list[Detection]:
        detections = []
        # Tracker rows: x1, y1, x2, y2, track_id, score, cls, detection index.
        for row in tracks:
            i = int(row[7])
            cls = int(boxes.cls[i])
            x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[i])
            detections.append(
                Detection(
                    class_id=cls,
                    class_name=self.class_names.get(cls, str(cls)),
                    confidence=float(boxes.conf[i]),
                    track_id=int(row[4]),
                    box=(x1, y1, x2, y2),
                )
            )
        return detections


@dataclass(frozen=True)
class _Decoded:
    index: int
    time_s: float
    image: Frame


class _FrameReader:
    """Decode frames on a thread so decoding overlaps with inference."""

    def __init__(self, path: Path, stride: int, depth: int) -> None:
        self._cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise InvalidUploadError(f"File {path.name!r} cannot be decoded.")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and fps > 0 else 25.0
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._stride = stride
        self._queue: queue.Queue[_Decoded | BaseException | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="signwatch-decode", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._cap.release()

    def batches(self, size: int) -> Iterator[list[_Decoded]]:
        """Yield lists of up to `size` decoded frames until the video ends."""
        batch: list[_Decoded] = []
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _run(self) -> None:
        try:
            self._decode()
        except Exception as exc:  # the consumer re-raises it
            self._put(exc)
        self._put(None)

    def _decode(self) -> None:
        index = 0
        while not self._stop.is_set():
            if index % self._stride:
                # Skipped frames are demuxed and decoded but not converted.
                if not self._cap.grab():
                    return
            else:
                ok, image = self._cap.read()
                if not ok or image is None:
                    return
                self._put(_Decoded(index, index / self.fps, cast(Frame, image)))
            index += 1

    def _put(self, item: _Decoded | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class _Progress:
    """Throttle progress reports to a few per second; always send the last."""

    def __init__(
        self, report: ProgressFn | None, total: int, clock: Callable[[], float]
    ) -> None:
        self._report = report
        self._total = total
        self._clock = clock
        self._started = clock()
        self._last = -math.inf

    def update(self, done: int, final: bool = False) -> None:
        now = self._clock()
        if self._report is None:
            return
        if not final and now - self._last < _PROGRESS_INTERVAL_S:
            return
        self._last = now
        # Containers may overstate their frame count; the end is the end.
        total = done if final else max(self._total, done)
        elapsed = now - self._started
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / fps if fps > 0 else None
        self._report(done, total, round(fps, 2), None if eta is None else round(eta, 1))


def run_inference(
    video_path: Path,
    out_dir: Path,
    options: InferenceOptions,
    detector: Detector,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    *,
    frames_hint: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Detect and track signs through a video and write the result files.

    Writes `detections.jsonl`, `detections.csv`, `thumbs/*.jpg` and, when
    `options.annotate` is set, `annotated.mp4` into `out_dir`. Results of an
    earlier run there are removed first; a failed or cancelled run leaves none.

    Args:
        video_path: the video to read.
        out_dir: the recording's folder.
        options: stride, batch size, annotation; the detector already holds
            the model settings.
        detector: finds and tracks signs; a `FakeDetector` in tests.
        on_progress: called with (frames_done, frames_total, fps, eta_s) at
            most four times a second and once at the end; frames count only
            the frames the stride keeps.
        should_stop: polled before every batch; when it returns true the run
            stops with `Cancelled`.
        frames_hint: frame count from `video.probe`, for containers that do
            not state one.
        clock: monotonic clock, replaceable in tests.

    Returns:
        The `result` object of status.json.

    Raises:
        Cancelled: `should_stop()` returned true.
        InvalidUploadError: the video cannot be opened.
    """
    started = clock()
    _remove_results(out_dir)
    try:
        return _run(
            video_path, out_dir, options, detector, on_progress, should_stop,
            frames_hint, clock, started,
        )  # fmt: skip
    except BaseException:
        _remove_results(out_dir)
        raise


def _run(
    video_path: Path,
    out_dir: Path,
    options: InferenceOptions,
    detector: Detector,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
    frames_hint: int | None,
    clock: Callable[[], float],
    started: float,
) -> dict[str, Any]:
    reader = _FrameReader(video_path, options.stride, depth=2 * options.batch)
    count = reader.frame_count or frames_hint or 0
    progress = _Progress(on_progress, math.ceil(count / options.stride), clock)
    summary = Summary()
    thumbs = Thumbnails(out_dir)
    detector.reset()
    done = 0
    logger.info("inference on %s: %d frames, %s", video_path.name, count, options)

    with (
        reader,
        DetectionLog(out_dir) as log,
        _annotated(reader, out_dir, options) as video,
    ):
        for batch in reader.batches(options.batch):
            # Stop between batches when the user cancelled.
            if should_stop is not None and should_stop():
                raise Cancelled("Cancelled by user.")

            # Detect the whole batch at once; the detector tracks frame by frame.
            found = detector.detect([frame.image for frame in batch])

            # Record each frame: logs, tallies, best crops, annotated frame.
            for frame, detections in zip(batch, found, strict=True):
                log.write(frame.index, frame.time_s, detections)
                summary.add(frame.time_s, detections)
                thumbs.offer(frame.image, detections)
                if video is not None:
                    video.write(frame.image, detections)

            # Report progress, throttled.
            done += len(batch)
            progress.update(done)
            logger.debug("frames %d..%d done", batch[0].index, batch[-1].index)

    # Write the files that are only complete at the end.
    thumbs.save(summary.track_classes())
    wall_s = clock() - started
    progress.update(done, final=True)
    result = summary.as_result(done, wall_s, detector.name)
    logger.info(
        "inference on %s done: %d frames in %.1f s, %d tracks",
        video_path.name,
        done,
        wall_s,
        result["tracks_total"],
    )
    return result


def _annotated(
    reader: _FrameReader, out_dir: Path, options: InferenceOptions
) -> AbstractContextManager[AnnotatedVideo | None]:
    if not options.annotate:
        return nullcontext()
    fps = reader.fps / options.stride
    return AnnotatedVideo(out_dir / VIDEO_NAME, reader.width, reader.height, fps)


class _OnnxModel:
    """An ONNX Runtime session wrapped in ultralytics' own pre- and post-steps.

    Ultralytics' ONNX backend gives ONNX Runtime every core; on a small CPU
    that shares cores with the decoder, one thread per worker is faster
    (measured in bench/bench_inference.py). The letterbox, NMS and box scaling
    are ultralytics' functions, so detections match its `predict`.
    """

    def __init__(self, path: Path, options: InferenceOptions, threads: int) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        from ultralytics.data.augment import LetterBox

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads
        session_options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        meta = self._session.get_modelmeta().custom_metadata_map
        stride = int(meta.get("stride", "32"))
        size = (options.imgsz, options.imgsz)
        self._letterbox = LetterBox(size, auto=True, stride=stride)
        self._conf = options.conf

    def predict(self, frames: Sequence[Frame]) -> list[Any]:
        """Return ultralytics `Boxes` (NumPy) for each frame."""
        import torch
        from ultralytics.engine.results import Boxes
        from ultralytics.utils import nms, ops

        # Letterbox, BGR to RGB, HWC to CHW, 0-255 to 0-1: as the predictor does.
        images = np.stack([cast(Frame, self._letterbox(image=f)) for f in frames])
        batch = images[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255
        raw = self._session.run(None, {self._input: batch})[0]
        kept = nms.non_max_suppression(torch.from_numpy(raw), self._conf, 0.7)
        found = []
        for frame, det in zip(frames, kept, strict=True):
            det[:, :4] = ops.scale_boxes(batch.shape[2:], det[:, :4], frame.shape)
            found.append(Boxes(det.numpy(), frame.shape[:2]))
        return found


def _resolve_backend(backend: str, device: str) -> str:
    if backend in ("onnx", "openvino") and device != "cpu":
        raise ModelError(
            f"Backend {backend!r} runs on the CPU only, but device {device!r} was asked for."
        )
    if backend != "auto":
        return backend
    if device != "cpu":
        return "torch"
    if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):
        logger.info("onnx or onnxruntime is not installed; inference runs on torch")
        return "torch"
    return "onnx"


def _default_workers(backend: str) -> int:
    return (os.cpu_count() or 1) if backend == "onnx" else 1


def _threads_per_worker(workers: int) -> int:
    # Leave one core to the decoder; more threads than cores make OpenMP and
    # ONNX Runtime spin and collapse throughput (measured: 3 fps instead of 30).
    return max(1, ((os.cpu_count() or 1) - 1) // workers)


def _split(frames: Sequence[Frame], parts: int) -> list[Sequence[Frame]]:
    size = math.ceil(len(frames) / parts) if frames else 1
    return [frames[i : i + size] for i in range(0, len(frames), size)] or [frames]


def _remove_results(out_dir: Path) -> None:
    for name in (JSONL_NAME, CSV_NAME, VIDEO_NAME):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / THUMBS_DIR, ignore_errors=True)


def load_yolo(path: Path) -> Any:
    """Return `ultralytics.YOLO` for a checkpoint or export at `path`.

    Raises:
        ModelError: the file cannot be loaded.
    """
    offline.configure()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    try:
        if path.suffix != ".pt":
            return YOLO(str(path), task="detect")
        # Ultralytics rewrites any '*yolov5n.pt' path to '*yolov5nu.pt' before
        # opening it, even when the file exists (checks.check_yolov5u_filename),
        # so checkpoints are opened through a neutral alias whatever their name.
        with tempfile.TemporaryDirectory(prefix="signwatch-") as tmp:
            alias = Path(tmp) / "weights.pt"
            alias.symlink_to(path.resolve())
            return YOLO(str(alias), task="detect")
    except Exception as exc:
        raise ModelError(f"Weights {str(path)!r} could not be loaded: {exc}.") from exc


def _tracker_config(name: str) -> Any:
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    try:
        cfg = IterableSimpleNamespace(**YAML.load(check_yaml(name)))  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ModelError(
            f"Tracker settings {name!r} could not be read: {exc}."
        ) from exc
    if cfg.tracker_type != "bytetrack":
        raise ModelError(
            f"Tracker {name!r} is of type {cfg.tracker_type!r}; only 'bytetrack' "
            "is supported."
        )
    return cfg


def _export(weights: Path, backend: str, imgsz: int, export_dir: Path | None) -> Path:
    """Export `weights` for `backend` once; later calls reuse the cached export."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    key = f"{weights.stem}-{digest}-{imgsz}"
    suffix = ".onnx" if backend == "onnx" else "_openvino_model"
    folder = export_dir or _DEFAULT_EXPORTS
    target = folder / f"{key}{suffix}"
    if target.exists():
        return target

    # Export from a private copy with a neutral name (see `load_yolo`), since
    # ultralytics writes the export next to the weights it loaded.
    from ultralytics import YOLO  # type: ignore[attr-defined]

    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=folder))
    try:
        copy = scratch / "model.pt"
        shutil.copyfile(weights, copy)
        logger.info("exporting %s to %s (once)", weights.name, backend)
        # onnxslim is not a dependency, so ONNX exports skip simplification.
        extra = {"simplify": False} if backend == "onnx" else {}
        with warnings.catch_warnings():
            # torch.jit.trace, used by the exporter, warns about its own future.
            warnings.simplefilter("ignore", FutureWarning)
            exported = YOLO(str(copy), task="detect").export(
                format=backend, imgsz=imgsz, dynamic=True, **extra
            )
        try:
            Path(exported).rename(target)
        except OSError:
            if not target.exists():
                raise
            # Another process finished the same export first; keep theirs.
    except SignwatchError:
        raise
    except Exception as exc:
        raise ModelError(
            f"Export of {str(weights)!r} to {backend!r} failed: {exc}."
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f"Option {name!r} must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise BadRequestError(
            f"Option {name!r} must be from {low} to {high}, got {value!r}."
        )


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestError(f"Option {name!r} must be a number, got {value!r}.")
    if not low <= value <= high:
        raise BadRequestError(
            f"Option {name!r} must be from {low:g} to {high:g}, got {value!r}."
        )


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _parse(
    form: Mapping[str, str], name: str, convert: Callable[[str], _T], default: _T
) -> _T:
    if name not in form:
        return default
    try:
        return convert(form[name])
    except ValueError:
        expected = _EXPECTED.get(convert, "value")
        raise BadRequestError(
            f"Field {name!r} must be {expected}, got {form[name]!r}."
        ) from None


_EXPECTED: dict[object, str] = {
    int: "an integer",
    float: "a number",
    _parse_bool: "true or false",
}
