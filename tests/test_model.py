"""The shipped detector, the training recipe and the evaluation command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT, ROAD_SIGNS, SHARED, WEIGHTS

from server import offline
from server.config import MODEL_IMGSZ
from server.errors import DatasetError
from server.training import (
    TrainConfig,
    build_initial_checkpoint,
    evaluate,
    evaluate_many,
    train,
)
from server.voc import (
    CLASSES,
    Box,
    Sample,
    load_voc,
    repeat_factors,
    split_blocks,
    write_yolo_dataset,
)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _clear_validation_images(per_class: int = 3) -> list[Sample]:
    """The validation images with one sign, the largest few of each class."""
    _, val = split_blocks(load_voc(ROAD_SIGNS))
    single = [s for s in val if len(s.boxes) == 1]

    def area(sample: Sample) -> float:
        box = sample.boxes[0]
        return (box.xmax - box.xmin) * (box.ymax - box.ymin)

    chosen = []
    for name in CLASSES:
        of_class = [s for s in single if s.boxes[0].name == name]
        chosen += sorted(of_class, key=area, reverse=True)[:per_class]
    return chosen


@pytest.mark.slow
def test_shipped_model_finds_labelled_signs() -> None:
    offline.configure()
    from ultralytics import YOLO

    model = YOLO(str(WEIGHTS))
    samples = _clear_validation_images()
    assert {s.boxes[0].name for s in samples} == set(CLASSES)
    results = model.predict(
        [str(s.image) for s in samples], imgsz=MODEL_IMGSZ, conf=0.25, verbose=False
    )

    misses = []
    for sample, result in zip(samples, results, strict=True):
        label: Box = sample.boxes[0]
        truth = (label.xmin, label.ymin, label.xmax, label.ymax)
        found = [
            (model.names[int(c)], _iou(truth, tuple(b)))
            for b, c in zip(
                result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), strict=True
            )
        ]
        if not any(name == label.name and iou > 0.5 for name, iou in found):
            misses.append((sample.image.name, label.name, found))
    assert not misses


@pytest.mark.slow
def test_recipe_runs_end_to_end_on_a_tiny_subset(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data=ROAD_SIGNS,
        out=tmp_path / "train",
        pretrained=SHARED / "pretrained" / "yolov5n-coco.state_dict.pt",
        imgsz=160,
        epochs=1,
        batch=4,
        workers=0,
        limit=6,
    )
    best = train(cfg)

    assert best.is_file()
    labels = sorted((tmp_path / "train" / "dataset" / "labels" / "train").glob("*.txt"))
    first_six = split_blocks(load_voc(ROAD_SIGNS))[0][:6]
    assert len(labels) == sum(repeat_factors(first_six, cfg.repeat_threshold))
    report = evaluate(best, ROAD_SIGNS, tmp_path / "eval", imgsz=160)
    assert 0.0 <= report.map50 <= 1.0


@pytest.mark.slow
def test_evaluation_matches_ultralytics_validation(tmp_path: Path) -> None:
    report = evaluate(WEIGHTS, ROAD_SIGNS, tmp_path / "eval", imgsz=MODEL_IMGSZ)

    # Ultralytics' own command-line validator on the same converted data.
    env = {**os.environ, "YOLO_OFFLINE": "true", "YOLO_VERBOSE": "true",
           "YOLO_CONFIG_DIR": str(PROJECT / ".cache" / "ultralytics")}  # fmt: skip
    yolo = Path(sys.executable).parent / "yolo"
    done = subprocess.run(
        [str(yolo), "val", f"model={WEIGHTS}", f"data={tmp_path / 'eval' / 'data.yaml'}",
         f"imgsz={MODEL_IMGSZ}", "batch=16", "plots=False", "device=cpu", f"project={tmp_path}", "name=cli"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(
        ln
        for ln in done.stdout.splitlines() + done.stderr.splitlines()
        if ln.strip().startswith("all ")
    )
    _, images, _boxes, _p, _r, map50, map50_95 = line.split()
    assert int(images) == report.images
    assert float(map50) == pytest.approx(report.map50, abs=0.0015)
    assert float(map50_95) == pytest.approx(report.map50_95, abs=0.0015)
    assert set(report.per_class) == set(CLASSES)


@pytest.mark.slow
def test_evaluate_command_prints_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "evaluate", "--json", "--cache", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=PROJECT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["images"] == 120 and 0 < report["map50"] <= 1


@pytest.mark.slow
def test_evaluate_command_compares_several_weights(tmp_path: Path) -> None:
    # Two checkpoints that differ: the shipped weights and an untrained one
    # (pretrained backbone, fresh head), which scores far lower.
    weak = build_initial_checkpoint(
        SHARED / "pretrained" / "yolov5n-coco.state_dict.pt", tmp_path / "init.pt"
    )
    command = [sys.executable, "-m", "server", "evaluate", "--cache", str(tmp_path / "e"),
               "--weights", str(WEIGHTS), str(weak)]  # fmt: skip
    table = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=PROJECT
    )
    as_json = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=600, cwd=PROJECT
    )
    assert table.returncode == 0 and as_json.returncode == 0, table.stderr[-2000:]

    reports = json.loads(as_json.stdout)
    assert [r["weights"] for r in reports] == [str(WEIGHTS), str(weak)]
    assert reports[0]["map50"] > reports[1]["map50"]
    rows = [line for line in table.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].split(" | ")[1:3] == ["mAP50", "mAP50-95"]
    shipped, weak_row = (row.strip("| ").split(" | ") for row in rows[1:])
    weakest = min(r["map50"] for r in reports[0]["per_class"].values())
    assert shipped[0] == str(WEIGHTS)
    assert float(shipped[1]) == pytest.approx(reports[0]["map50"], abs=5e-4)
    assert float(shipped[-1]) == pytest.approx(weakest, abs=5e-4)
    assert weak_row[0] == str(weak)


def _sample(index: int, *names: str, image: Path = Path("x.png")) -> Sample:
    boxes = tuple(Box(name, 10, 10, 50, 50) for name in names)
    return Sample(index=index, image=image, width=100, height=100, boxes=boxes)


def test_repeat_factors_favour_rare_classes() -> None:
    # "stop" is in 1 of 10 images: factor sqrt(1.0 * 10 / 1), rounded to 3;
    # "speedlimit" is in 9 of 10 (factor 1); an image with both takes the larger.
    samples = [_sample(i, "speedlimit") for i in range(8)]
    samples.append(_sample(8, "speedlimit", "stop"))
    samples.append(_sample(9))  # no boxes: a background image

    assert repeat_factors(samples, 1.0) == [1] * 8 + [3, 1]
    # sqrt(0.4 * 10 / 1) = 2.
    assert repeat_factors(samples, 0.4)[8] == 2
    assert repeat_factors(samples, 0.0) == [1] * 10


def test_dataset_writes_repeated_copies_of_training_images_only(
    tmp_path: Path,
) -> None:
    image = tmp_path / "road1.png"
    image.write_bytes(b"not decoded here")
    train_set = [_sample(1, "stop", image=image)]
    val = [_sample(2, "stop", image=image)]

    write_yolo_dataset(train_set, val, tmp_path / "yolo", repeats=[3])

    labels = sorted(p.name for p in (tmp_path / "yolo/labels/train").iterdir())
    images = sorted(p.name for p in (tmp_path / "yolo/images/train").iterdir())
    assert labels == ["road1.r1.txt", "road1.r2.txt", "road1.txt"]
    assert images == ["road1.png", "road1.r1.png", "road1.r2.png"]
    texts = {(tmp_path / "yolo/labels/train" / n).read_text() for n in labels}
    assert texts == {"3 0.300000 0.300000 0.400000 0.400000\n"}
    assert len(list((tmp_path / "yolo/labels/val").iterdir())) == 1
    with pytest.raises(DatasetError, match="repeat factors"):
        write_yolo_dataset(train_set, val, tmp_path / "yolo", repeats=[1, 2])


def test_evaluate_refuses_missing_weights(tmp_path: Path) -> None:
    from server.errors import ModelError

    with pytest.raises(ModelError, match="do not exist"):
        evaluate(tmp_path / "nope.pt", ROAD_SIGNS, tmp_path / "eval")
    # With several checkpoints a missing one is refused before any is run.
    with pytest.raises(ModelError, match=r"nope\.pt"):
        evaluate_many([WEIGHTS, tmp_path / "nope.pt"], ROAD_SIGNS, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()
