"""Tests of server/inference.py: options, the frame loop, and the real model."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_video import (
    DASHCAM,
    SIGN_IMAGES,
    WEIGHTS,
    gradient_clip,
    read_frames,
    sign_clip,
)

from server.errors import BadRequestError, ModelError
from server.inference import (
    Cancelled,
    FakeDetector,
    InferenceOptions,
    YoloDetector,
    run_inference,
)

CLIP_FRAMES = 60


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-frame, 160x120 synthetic clip."""
    return gradient_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", CLIP_FRAMES)


@pytest.fixture(scope="module")
def yolo() -> YoloDetector:
    """The shipped model, loaded once for this module's slow tests."""
    return YoloDetector(WEIGHTS, InferenceOptions())


class _Recorder:
    """Collects progress reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, float, float | None]] = []

    def __call__(self, done: int, total: int, fps: float, eta: float | None) -> None:
        self.calls.append((done, total, fps, eta))


def _ticking_clock(step_s: float) -> Iterator[float]:
    return (i * step_s for i in itertools.count())


def _jsonl(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "detections.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# Options


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("imgsz", 300, "multiple of 32"),
        ("imgsz", 0, "from 32 to 1920"),
        ("imgsz", "320", "must be an integer"),
        ("conf", 1.5, "from 0.01 to 0.99"),
        ("conf", "high", "must be a number"),
        ("stride", 0, "from 1 to 1000"),
        ("batch", 65, "from 1 to 64"),
        ("batch", True, "must be an integer"),
        ("device", "gpu", "'cpu', 'cuda'"),
        ("annotate", "yes", "true or false"),
        ("tracker", "bytetrack", "a .yaml file"),
    ],
    ids=[
        "imgsz-not-multiple",
        "imgsz-zero",
        "imgsz-string",
        "conf-above-1",
        "conf-word",
        "stride-zero",
        "batch-too-big",
        "batch-bool",
        "device-unknown",
        "annotate-string",
        "tracker-no-yaml",
    ],
)
def test_options_refuse_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(BadRequestError, match=message) as caught:
        InferenceOptions(**{field: value})  # type: ignore[arg-type]

    assert repr(value) in str(caught.value)


def test_options_from_form_and_back() -> None:
    form = {"imgsz": "640", "conf": "0.4", "stride": "2", "annotate": "true"}

    options = InferenceOptions.from_form(form, InferenceOptions(batch=8))

    assert options.as_dict() == {
        "imgsz": 640,
        "conf": 0.4,
        "stride": 2,
        "batch": 8,
        "device": "cpu",
        "annotate": True,
    }
    assert InferenceOptions(**options.as_dict()) == options


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"imgsz": "big"}, "Field 'imgsz' must be an integer, got 'big'."),
        ({"conf": "x"}, "Field 'conf' must be a number, got 'x'."),
        ({"annotate": "maybe"}, "Field 'annotate' must be true or false"),
        ({"stride": "-1"}, "Option 'stride' must be from 1 to 1000, got -1."),
    ],
    ids=["imgsz-word", "conf-word", "annotate-word", "stride-negative"],
)
def test_options_from_form_refuse_bad_fields(
    form: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        InferenceOptions.from_form(form)

    assert str(caught.value).startswith(message)


# The frame loop, with the fake detector


def test_run_reports_progress_and_summary(clip: Path, tmp_path: Path) -> None:
    progress = _Recorder()
    detector = FakeDetector(period=10, visible=6)

    result = run_inference(
        clip,
        tmp_path,
        InferenceOptions(batch=4),
        detector,
        progress,
        clock=_ticking_clock(0.05).__next__,
    )

    # Signs 0..5 each seen in 6 frames; ids follow the fake's script.
    assert result["frames_processed"] == CLIP_FRAMES
    assert result["tracks_total"] == 6
    assert result["detections_total"] == 36
    assert result["classes"]["speedlimit"] == {
        "tracks": 2,
        "detections": 12,
        "first_s": 0.0,
        "last_s": 1.8,
    }
    assert result["model"] == "fake.pt"
    assert result["wall_s"] > 0
    assert detector.batch_sizes == [4] * 15
    # Throttled to one report per 0.25 s of the (ticking) clock, plus the last.
    assert 2 <= len(progress.calls) < 15
    assert progress.calls[-1][:2] == (CLIP_FRAMES, CLIP_FRAMES)
    assert progress.calls[-1][3] == 0.0
    dones = [call[0] for call in progress.calls]
    assert dones == sorted(dones)
    assert all(call[1] == CLIP_FRAMES for call in progress.calls)
    assert all(call[2] > 0 for call in progress.calls)


def test_run_writes_result_files(clip: Path, tmp_path: Path) -> None:
    run_inference(clip, tmp_path, InferenceOptions(annotate=True), FakeDetector(), None)

    rows = _jsonl(tmp_path)
    assert len(rows) == 36
    assert {row["track_id"] for row in rows} == {1, 2, 3, 4, 5, 6}
    assert rows[0]["frame"] == 0 and rows[-1]["frame"] == 55
    csv_lines = (tmp_path / "detections.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 36
    thumbs = sorted(p.name for p in (tmp_path / "thumbs").iterdir())
    assert thumbs == [
        "crosswalk-2.jpg",
        "crosswalk-6.jpg",
        "speedlimit-1.jpg",
        "speedlimit-5.jpg",
        "stop-4.jpg",
        "trafficlight-3.jpg",
    ]
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


@pytest.mark.parametrize("stride", [2, 3, 7], ids=["stride-2", "stride-3", "stride-7"])
def test_run_applies_the_stride(clip: Path, tmp_path: Path, stride: int) -> None:
    progress = _Recorder()
    detector = FakeDetector(period=4, visible=4)

    result = run_inference(
        clip, tmp_path, InferenceOptions(stride=stride, batch=3), detector, progress
    )

    expected = math.ceil(CLIP_FRAMES / stride)
    assert result["frames_processed"] == expected
    assert progress.calls[-1][:2] == (expected, expected)
    assert sum(detector.batch_sizes) == expected
    frames = [row["frame"] for row in _jsonl(tmp_path)]
    assert frames == list(range(0, CLIP_FRAMES, stride))
    times = [row["time_s"] for row in _jsonl(tmp_path)]
    assert times[1] == pytest.approx(stride / 25.0)


def test_run_stops_when_cancelled(clip: Path, tmp_path: Path) -> None:
    polls = itertools.count()
    detector = FakeDetector()

    with pytest.raises(Cancelled, match=r"^Cancelled by user\.$"):
        run_inference(
            clip,
            tmp_path,
            InferenceOptions(batch=2, annotate=True),
            detector,
            None,
            lambda: next(polls) >= 3,
        )

    assert detector.batch_sizes == [2, 2, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_run_replaces_results_of_an_earlier_run(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "thumbs").mkdir()
    (tmp_path / "thumbs" / "stop-99.jpg").write_bytes(b"old")
    (tmp_path / "annotated.mp4").write_bytes(b"old")
    detector = FakeDetector()

    first = run_inference(clip, tmp_path, InferenceOptions(), detector, None)
    second = run_inference(clip, tmp_path, InferenceOptions(), detector, None)

    assert first == second | {"wall_s": first["wall_s"]}
    assert not (tmp_path / "thumbs" / "stop-99.jpg").exists()
    assert not (tmp_path / "annotated.mp4").exists()


def test_run_refuses_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_text("nothing here")

    with pytest.raises(Exception, match="cannot be decoded"):
        run_inference(bogus, tmp_path / "out", InferenceOptions(), FakeDetector())


# The real model


def test_yolo_detector_refuses_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="do not exist"):
        YoloDetector(tmp_path / "absent.pt", InferenceOptions())


def test_yolo_detector_refuses_unknown_backends() -> None:
    with pytest.raises(ModelError, match="Backend must be one of"):
        YoloDetector(WEIGHTS, InferenceOptions(), backend="tensorrt")


def test_yolo_detector_refuses_garbage_weights(tmp_path: Path) -> None:
    weights = tmp_path / "garbage.pt"
    weights.write_bytes(b"not a checkpoint")

    with pytest.raises(ModelError, match="could not be loaded"):
        YoloDetector(weights, InferenceOptions())


@pytest.mark.slow
def test_real_model_on_the_dashcam_clip(yolo: YoloDetector, tmp_path: Path) -> None:
    progress = _Recorder()

    result = run_inference(
        DASHCAM, tmp_path, InferenceOptions(annotate=True), yolo, progress
    )

    assert result["frames_processed"] == 221
    assert result["model"] == "signwatch-signs.pt"
    assert progress.calls[-1][:2] == (221, 221)
    assert set(result["classes"]) <= {"speedlimit", "crosswalk", "trafficlight", "stop"}
    per_class = result["classes"].values()
    assert sum(c["detections"] for c in per_class) == result["detections_total"]
    assert sum(c["tracks"] for c in per_class) == result["tracks_total"]
    assert len(_jsonl(tmp_path)) == result["detections_total"]
    assert (tmp_path / "annotated.mp4").stat().st_size > 100_000


@pytest.mark.slow
def test_real_model_finds_and_tracks_held_signs(
    yolo: YoloDetector, tmp_path: Path
) -> None:
    indices = [i for pair in zip(*SIGN_IMAGES.values(), strict=True) for i in pair]
    # The blank gap outlasts ByteTrack's 30-frame memory, so a lost track
    # cannot be taken over by the next image's sign at the same place.
    clip = sign_clip(tmp_path / "signs.mp4", indices, hold=8, gap=32)

    result = run_inference(clip, tmp_path / "out", InferenceOptions(), yolo)

    classes = result["classes"]
    assert set(classes) >= set(SIGN_IMAGES), classes
    for name in SIGN_IMAGES:
        # Two images per class, each held for 8 frames: about two tracks.
        assert 1 <= classes[name]["tracks"] <= 4, (name, classes[name])
        assert classes[name]["detections"] >= 8, (name, classes[name])
    # Each held sign is counted about once, not once per frame.
    assert result["tracks_total"] <= 1.5 * len(indices), result
    assert result["detections_total"] >= 4 * result["tracks_total"], result


def _boxes_match(ours: list[Any], theirs: list[Any]) -> bool:
    for a, b in zip(ours, theirs, strict=True):
        if len(a) != len(b) or (a.cls != b.cls).any():
            return False
        if len(a) and abs(a.xyxy - b.xyxy).max() > 1.0:
            return False
    return True


@pytest.mark.slow
def test_parallel_workers_and_onnx_match_torch(tmp_path: Path) -> None:
    clip = sign_clip(tmp_path / "signs.mp4", [629, 165, 164, 54], hold=1, gap=0)
    frames = read_frames(clip)
    options = InferenceOptions()
    single = YoloDetector(WEIGHTS, options, backend="torch", workers=1)
    double = YoloDetector(WEIGHTS, options, backend="torch", workers=2)
    onnx = YoloDetector(
        WEIGHTS, options, backend="onnx", export_dir=tmp_path, workers=2
    )

    reference = single.predict(frames)

    assert sum(len(boxes) for boxes in reference) >= 4
    assert _boxes_match(double.predict(frames), reference)
    assert _boxes_match(onnx.predict(frames), reference)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
