"""Benchmark the inference pipeline against ultralytics' own `predict`.

Prints a Markdown table of frames per second on one video, with the same
weights, image size and confidence threshold everywhere:

- OpenCV decode alone (the ceiling of any pipeline that decodes with it);
- the arithmetic limit: model GFLOPs per frame against the NumPy sgemm
  GFLOP/s measured in the same run;
- `YOLO(weights).predict(video, stream=True)`: the baseline every ratio uses;
- `run_inference` with `YoloDetector` for each backend and batch size.

Then it checks that our raw detections (batched predict, before tracking)
match ultralytics' predict frame by frame, on the video and on the road-sign
validation images.

Usage:
    .venv/bin/python bench/bench_inference.py [--repeats 5] [--configs torch:4:1,onnx:4:1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server import offline  # noqa: E402
from server.config import MODEL_IMGSZ  # noqa: E402
from server.inference import (  # noqa: E402
    InferenceOptions,
    YoloDetector,
    load_yolo,
    run_inference,
)
from server.voc import load_voc, split_blocks  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from helpers_video import read_frames, sign_clip  # noqa: E402

logger = logging.getLogger("bench")

DATA = REPO.parent / "shared" / "data"
IOU_MATCH = 0.5
BASELINE = "ultralytics `predict(stream=True)`"


@dataclass
class Row:
    """One line of the speed table."""

    name: str
    fps: list[float]
    note: str = ""

    @property
    def best(self) -> float:
        return max(self.fps)

    @property
    def median(self) -> float:
        return statistics.median(self.fps)


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    offline.configure()
    import torch

    options = InferenceOptions(imgsz=args.imgsz, conf=args.conf)
    frames = _count_frames(args.video)
    print(
        f"video {args.video.name} ({frames} frames), weights {args.weights.name}, "
        f"imgsz {args.imgsz}, conf {args.conf}, torch threads "
        f"{torch.get_num_threads()}, {args.repeats} repeats\n"
    )

    detectors = {
        config: YoloDetector(
            args.weights,
            InferenceOptions(imgsz=args.imgsz, conf=args.conf, batch=config[1]),
            backend=config[0],
            workers=config[2],
        )
        for config in args.configs
    }
    baseline_model = load_yolo(args.weights)
    runs: dict[str, Callable[[], float]] = {
        "OpenCV decode only": lambda: _decode_fps(args.video),
        BASELINE: lambda: _predict_fps(baseline_model, args.video, options, None),
    }
    if args.all_cores_baseline:
        cores = os.cpu_count() or 1
        runs[f"{BASELINE}, torch on all {cores} cores"] = lambda: _predict_fps(
            baseline_model, args.video, options, cores
        )
    for (backend, batch, workers), detector in detectors.items():
        name = f"signwatch `run_inference`: {backend}, batch {batch}, {workers} workers"
        runs[name] = _pipeline_runner(args.video, options, batch, detector)

    # Interleave the repeats so background load spreads over every row.
    rows = {name: Row(name, []) for name in runs}
    for repeat in range(args.repeats):
        for name, run in runs.items():
            rows[name].fps.append(run())
            logger.warning(
                "repeat %d %s: %.1f fps", repeat + 1, name, rows[name].fps[-1]
            )

    gflops, shape = _model_gflops(args.weights, args.imgsz, args.video)
    sgemm = _sgemm_gflops()
    limit = Row(
        "arithmetic limit (GFLOPs/frame vs sgemm)",
        [sgemm / gflops],
        f"{gflops:.2f} GFLOPs/frame at {shape[1]}x{shape[0]}; sgemm {sgemm:.0f} GFLOP/s",
    )
    _print_table([*rows.values(), limit], rows[BASELINE])

    print(
        "\nDetections, ours (batched predict, before tracking) vs ultralytics predict:\n"
    )
    by_backend = {config[0]: detector for config, detector in detectors.items()}
    _print_matches(by_backend, baseline_model, options, args)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--video", type=Path, default=DATA / "videos" / "solidWhiteRight.mp4"
    )
    parser.add_argument(
        "--weights", type=Path, default=REPO / "models" / "signwatch-signs.pt"
    )
    parser.add_argument("--imgsz", type=int, default=MODEL_IMGSZ)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--configs",
        type=_configs,
        default=_configs("torch:1:1,torch:4:1,onnx:4:1,onnx:4:2,openvino:4:1"),
        help="pipelines to time, as backend:batch:workers,...",
    )
    parser.add_argument(
        "--all-cores-baseline",
        action="store_true",
        help="also time predict with torch on every core (ultralytics uses cores - 1)",
    )
    return parser.parse_args()


def _configs(text: str) -> list[tuple[str, int, int]]:
    configs = []
    for item in text.split(","):
        backend, batch, workers = item.split(":")
        configs.append((backend, int(batch), int(workers)))
    return configs


def _count_frames(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return count


def _decode_fps(video: Path) -> float:
    started = time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    return frames / (time.perf_counter() - started)


def _predict_fps(
    model: Any, video: Path, options: InferenceOptions, threads: int | None
) -> float:
    """Time ultralytics' predict; `threads` None keeps its own torch setting."""
    import torch
    from ultralytics.utils import NUM_THREADS

    torch.set_num_threads(threads or NUM_THREADS)
    started = time.perf_counter()
    frames = 0
    for _ in model.predict(
        str(video), stream=True, imgsz=options.imgsz, conf=options.conf, verbose=False
    ):
        frames += 1
    return frames / (time.perf_counter() - started)


def _pipeline_runner(
    video: Path, options: InferenceOptions, batch: int, detector: YoloDetector
) -> Callable[[], float]:
    run_options = InferenceOptions(imgsz=options.imgsz, conf=options.conf, batch=batch)

    def run() -> float:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            result = run_inference(video, Path(out), run_options, detector)
            return int(result["frames_processed"]) / (time.perf_counter() - started)

    return run


def _model_gflops(
    weights: Path, imgsz: int, video: Path
) -> tuple[float, tuple[int, int]]:
    """GFLOPs of one forward pass at the letterboxed shape the video gets."""
    import copy

    import thop
    import torch

    cap = cv2.VideoCapture(str(video))
    width, height = (
        cap.get(cv2.CAP_PROP_FRAME_WIDTH),
        cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
    )
    cap.release()
    scale = imgsz / max(width, height)
    shape = (
        int(np.ceil(height * scale / 32) * 32),
        int(np.ceil(width * scale / 32) * 32),
    )
    model = copy.deepcopy(load_yolo(weights).model).float().eval()
    x = torch.zeros(1, 3, *shape)
    macs, _ = thop.profile(model, inputs=(x,), verbose=False)
    return 2 * macs / 1e9, shape


def _sgemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def _print_table(rows: Sequence[Row], baseline: Row) -> None:
    """Print the speed table; ratios are to the baseline, best to best, and
    the median of each repeat's ratio to the baseline timed just before it
    (steadier when the machine is busy)."""
    print(
        "| pipeline | frames/s (best) | frames/s (median) | vs `predict` (best) "
        "| vs `predict` (median of paired) | note |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        paired = [fps / base for fps, base in zip(row.fps, baseline.fps, strict=False)]
        ratio = f"{statistics.median(paired):.2f}x" if len(row.fps) > 1 else ""
        print(
            f"| {row.name} | {row.best:.1f} | {row.median:.1f} | "
            f"{row.best / baseline.best:.2f}x | {ratio} | {row.note} |"
        )


def _print_matches(
    detectors: dict[str, YoloDetector],
    model: Any,
    options: InferenceOptions,
    args: argparse.Namespace,
) -> None:
    print("| input | backend | frames | ours | ultralytics | matched | match rate |")
    print("|---|---|---:|---:|---:|---:|---:|")
    val = split_blocks(load_voc(DATA / "road-signs"))[1]
    with tempfile.TemporaryDirectory() as tmp:
        clip = sign_clip(Path(tmp) / "val.mp4", [s.index for s in val], hold=1, gap=0)
        clip_frames = read_frames(clip)
    inputs = (
        (args.video.name, read_frames(args.video)),
        ("road-sign val images as a 416x416 clip", clip_frames),
    )
    for name, frames in inputs:
        reference = [
            model.predict(frame, imgsz=options.imgsz, conf=options.conf, verbose=False)[
                0
            ]
            .boxes.cpu()
            .numpy()
            for frame in frames
        ]
        theirs = sum(len(ref) for ref in reference)
        for backend, detector in detectors.items():
            ours = matched = 0
            for i in range(0, len(frames), options.batch):
                mine = detector.predict(frames[i : i + options.batch])
                for boxes, ref in zip(mine, reference[i:], strict=False):
                    ours += len(boxes)
                    matched += _matched(boxes, ref)
            rate = matched / max(ours, theirs) if max(ours, theirs) else 1.0
            print(
                f"| {name} | {backend} | {len(frames)} | {ours} | {theirs} "
                f"| {matched} | {rate:.1%} |"
            )


def _matched(ours: Any, theirs: Any) -> int:
    """Greedy one-to-one matches of the same class with IoU >= IOU_MATCH."""
    used: set[int] = set()
    count = 0
    for box, cls in zip(ours.xyxy, ours.cls, strict=True):
        for j, (other, other_cls) in enumerate(
            zip(theirs.xyxy, theirs.cls, strict=True)
        ):
            if j in used or other_cls != cls or _iou(box, other) < IOU_MATCH:
                continue
            used.add(j)
            count += 1
            break
    return count


def _iou(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


if __name__ == "__main__":
    main()
