"""Tests of server/results.py: logs, summary, thumbnails, annotated video."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from server.results import (
    AnnotatedVideo,
    Detection,
    DetectionLog,
    Summary,
    Thumbnails,
    draw_detections,
    list_downloads,
    list_thumbnails,
)


def _det(
    track: int,
    name: str = "stop",
    conf: float = 0.9,
    box: tuple[float, float, float, float] = (10.0, 20.0, 50.0, 60.0),
) -> Detection:
    class_id = ("speedlimit", "crosswalk", "trafficlight", "stop").index(name)
    return Detection(class_id, name, conf, track, box)


def test_detection_log_writes_jsonl_and_csv(tmp_path: Path) -> None:
    with DetectionLog(tmp_path) as log:
        log.write(0, 0.0, [_det(1, conf=0.91234567)])
        log.write(1, 0.04, [])
        log.write(2, 0.08, [_det(1), _det(2, "crosswalk", 0.5, (1.04, 2, 3, 4))])

    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows[0] == {
        "frame": 0,
        "time_s": 0.0,
        "class": "stop",
        "confidence": 0.9123,
        "track_id": 1,
        "x1": 10.0,
        "y1": 20.0,
        "x2": 50.0,
        "y2": 60.0,
    }
    assert [r["frame"] for r in rows] == [0, 2, 2]
    with open(tmp_path / "detections.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == [
        "frame", "time_s", "class", "confidence", "track_id", "x1", "y1", "x2", "y2"
    ]  # fmt: skip
    assert [(r["frame"], r["class"], r["track_id"], r["x1"]) for r in table] == [
        ("0", "stop", "1", "10.0"),
        ("2", "stop", "1", "10.0"),
        ("2", "crosswalk", "2", "1.0"),
    ]


def test_summary_counts_each_track_once_under_its_usual_class() -> None:
    summary = Summary()
    summary.add(0.0, [_det(1, "stop"), _det(2, "crosswalk")])
    summary.add(0.5, [_det(1, "stop"), _det(2, "crosswalk")])
    summary.add(1.25, [_det(1, "speedlimit")])

    result = summary.as_result(frames_processed=3, wall_s=1.234, model="m.pt")

    assert result == {
        "classes": {
            "crosswalk": {"tracks": 1, "detections": 2, "first_s": 0.0, "last_s": 0.5},
            "speedlimit": {
                "tracks": 0,
                "detections": 1,
                "first_s": 1.25,
                "last_s": 1.25,
            },
            "stop": {"tracks": 1, "detections": 2, "first_s": 0.0, "last_s": 0.5},
        },
        "tracks_total": 2,
        "detections_total": 5,
        "frames_processed": 3,
        "wall_s": 1.23,
        "model": "m.pt",
    }


def test_summary_of_nothing() -> None:
    result = Summary().as_result(frames_processed=10, wall_s=0.5, model="m.pt")

    assert result["classes"] == {}
    assert (result["tracks_total"], result["detections_total"]) == (0, 0)


def test_thumbnails_keep_the_best_crop_per_track(tmp_path: Path) -> None:
    dark = np.full((240, 320, 3), 20, np.uint8)
    bright = np.full((240, 320, 3), 230, np.uint8)
    thumbs = Thumbnails(tmp_path)
    thumbs.offer(dark, [_det(3, conf=0.4), _det(5, "crosswalk", conf=0.7)])
    thumbs.offer(bright, [_det(3, conf=0.8), _det(5, "crosswalk", conf=0.6)])
    thumbs.offer(dark, [_det(3, conf=0.5)])

    written = thumbs.save({3: "stop", 5: "crosswalk"})

    assert [p.name for p in written] == ["stop-3.jpg", "crosswalk-5.jpg"]
    assert list_thumbnails(tmp_path) == sorted(written)
    stop = cv2.imread(str(tmp_path / "thumbs" / "stop-3.jpg"))
    crosswalk = cv2.imread(str(tmp_path / "thumbs" / "crosswalk-5.jpg"))
    assert stop.mean() > 120 > crosswalk.mean()
    assert max(stop.shape[:2]) >= 96


@pytest.mark.parametrize(
    "box",
    [(0.0, 0.0, 319.0, 239.0), (300.0, 230.0, 330.0, 250.0), (5.0, 5.0, 5.0, 5.0)],
    ids=["whole-frame", "past-the-edge", "zero-size"],
)
def test_thumbnail_crops_stay_inside_the_frame(
    tmp_path: Path, box: tuple[float, float, float, float]
) -> None:
    thumbs = Thumbnails(tmp_path)
    thumbs.offer(np.zeros((240, 320, 3), np.uint8), [_det(1, box=box)])

    (path,) = thumbs.save({1: "stop"})

    image = cv2.imread(str(path))
    assert image is not None
    assert 1 <= max(image.shape[:2]) <= 320


def test_draw_detections_marks_the_box() -> None:
    image = np.zeros((100, 100, 3), np.uint8)

    draw_detections(image, [_det(1, box=(30.0, 40.0, 70.0, 80.0))])

    assert image[40, 50].any()
    assert not image[60, 50].any()


def test_annotated_video_is_browser_playable_h264(tmp_path: Path) -> None:
    path = tmp_path / "annotated.mp4"
    video = AnnotatedVideo(path, width=161, height=121, fps=12.5)
    for i in range(30):
        frame = np.full((121, 161, 3), i * 8, np.uint8)
        video.write(frame, [_det(1, box=(10.0 + i, 10.0, 40.0 + i, 40.0))])
    video.close()

    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 30
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (160, 120)
        assert float(stream.average_rate or 0) == pytest.approx(12.5)
    head = path.read_bytes()
    assert 0 <= head.find(b"moov") < head.find(b"mdat"), "index must come first"


def test_list_downloads_lists_existing_files(tmp_path: Path) -> None:
    (tmp_path / "detections.csv").write_text("frame\n")
    (tmp_path / "detections.jsonl").write_text("")
    (tmp_path / "thumbs").mkdir()
    (tmp_path / "thumbs" / "stop-2.jpg").write_bytes(b"x" * 7)
    (tmp_path / "source.mp4").write_bytes(b"video")

    downloads = list_downloads(tmp_path, "3f2a9c0d1e4b")

    assert downloads == [
        {
            "name": "detections.csv",
            "kind": "csv",
            "url": "/api/recordings/3f2a9c0d1e4b/files/detections.csv",
            "size_bytes": 6,
        },
        {
            "name": "detections.jsonl",
            "kind": "jsonl",
            "url": "/api/recordings/3f2a9c0d1e4b/files/detections.jsonl",
            "size_bytes": 0,
        },
        {
            "name": "thumbs/stop-2.jpg",
            "kind": "thumbnail",
            "url": "/api/recordings/3f2a9c0d1e4b/files/thumbs/stop-2.jpg",
            "size_bytes": 7,
        },
    ]


def test_list_downloads_of_an_empty_folder(tmp_path: Path) -> None:
    assert list_downloads(tmp_path / "absent", "abc") == []
