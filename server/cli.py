"""Command line: `signwatch [serve|upload|follow|train|evaluate]`.

`python -m server` with no command serves. Server options resolve as argument,
then `SIGNWATCH_*` variable, then default (see `config.resolve`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config
from .errors import ConfigError, SignwatchError

logger = logging.getLogger(__name__)

_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to bind (SIGNWATCH_HOST; 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (SIGNWATCH_PORT; 8000)")
    parser.add_argument(
        "--recordings",
        type=Path,
        help="recordings root (SIGNWATCH_RECORDINGS; ./recordings)",
    )
    parser.add_argument(
        "--weights", type=Path, help="model weights (SIGNWATCH_WEIGHTS)"
    )
    parser.add_argument(
        "--workers", type=int, help="concurrent jobs (SIGNWATCH_WORKERS; 1)"
    )
    parser.add_argument("--device", help="inference device (SIGNWATCH_DEVICE; cpu)")
    parser.add_argument(
        "--log-level",
        dest="log_level",
        help="debug, info, warning or error (SIGNWATCH_LOG_LEVEL)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="signwatch", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    _serve_args(
        commands.add_parser("serve", help="run the status server (the default)")
    )

    upload = commands.add_parser("upload", help="upload a video to a running server")
    upload.add_argument("file", type=Path)
    upload.add_argument("--url", default=None, help="server URL (SIGNWATCH_URL)")
    upload.add_argument(
        "--follow", action="store_true", help="show progress until the job ends"
    )
    upload.add_argument(
        "--annotate", action="store_true", help="also render an annotated video"
    )
    for name, kind in (
        ("imgsz", int),
        ("conf", float),
        ("stride", int),
        ("batch", int),
    ):
        upload.add_argument(f"--{name}", type=kind)

    follow = commands.add_parser("follow", help="print events as JSON lines")
    follow.add_argument("id", nargs="?", help="follow only this recording")
    follow.add_argument("--url", default=None, help="server URL (SIGNWATCH_URL)")

    train = commands.add_parser("train", help="train the traffic-sign detector")
    train.add_argument("--data", type=Path, default=_SHARED / "road-signs")
    train.add_argument("--out", type=Path, default=Path(".cache/train"))
    train.add_argument(
        "--pretrained",
        type=Path,
        default=_SHARED / "pretrained" / "yolov5n-coco.state_dict.pt",
    )
    train.add_argument(
        "--no-pretrained", action="store_true", help="start from random weights"
    )
    train.add_argument(
        "--start", type=Path, help="continue from this checkpoint instead"
    )
    train.add_argument("--warmup-epochs", type=float, default=3.0)
    train.add_argument(
        "--repeat-threshold",
        type=float,
        default=1.0,
        help="repeat-factor sampling of rare classes (0 disables)",
    )
    train.add_argument(
        "--lr0", type=float, help="initial learning rate (default: auto)"
    )
    train.add_argument("--imgsz", type=int, default=320)
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--hours", type=float, help="time budget; overrides --epochs")
    train.add_argument("--batch", type=int, default=16)
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--device", default="cpu")
    train.add_argument(
        "--limit", type=int, help="use only N images per split (smoke runs)"
    )
    train.add_argument(
        "--save-period",
        type=int,
        default=-1,
        help="also keep a checkpoint every N epochs (to compare on mAP50 and per class)",
    )
    train.add_argument("--ship", type=Path, help="copy the stripped best weights here")

    evaluate = commands.add_parser(
        "evaluate", help="report mAP of weights on a VOC folder"
    )
    evaluate.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        default=[config.DEFAULT_WEIGHTS],
        help="one or more checkpoints; several print one comparison row each",
    )
    evaluate.add_argument("--data", type=Path, default=_SHARED / "road-signs")
    evaluate.add_argument("--split", choices=("val", "all"), default="val")
    evaluate.add_argument("--imgsz", type=int, default=config.MODEL_IMGSZ)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--cache", type=Path, default=Path(".cache/eval"))
    evaluate.add_argument("--json", action="store_true", help="print JSON, not a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `signwatch` and `python -m server`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in {"-h", "--help"}):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    command = args.command
    try:
        if command == "serve":
            return _serve(vars(args))
        if command in {"upload", "follow"}:
            from . import client

            return client.main(command, args)
        if command == "train":
            return _train(args)
        return _evaluate(args)
    except SignwatchError as exc:
        print(f"signwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(values: dict[str, Any]) -> int:
    import uvicorn

    from .app import create_app

    settings = config.resolve(values)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    if not settings.weights.is_file():
        raise ConfigError(
            f"Model weights {str(settings.weights)!r} do not exist; set --weights or "
            "SIGNWATCH_WEIGHTS to a YOLO .pt file."
        )
    app = create_app(settings)
    logger.info("serving on http://%s:%d/status", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        ws_max_size=1024**2,
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import shutil

    from .training import TrainConfig, strip_checkpoint, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        pretrained=None if args.no_pretrained else args.pretrained,
        imgsz=args.imgsz,
        epochs=args.epochs,
        hours=args.hours,
        batch=args.batch,
        workers=args.workers,
        device=args.device,
        limit=args.limit,
        start=args.start,
        repeat_threshold=args.repeat_threshold,
        extra={
            "warmup_epochs": args.warmup_epochs,
            "cache": True,
            "save_period": args.save_period,
        },
    )
    if args.lr0 is not None:
        # An explicit rate needs an explicit optimizer: "auto" ignores lr0.
        cfg.extra.update(lr0=args.lr0, optimizer="AdamW")
    best = train(cfg)
    if args.ship:
        stripped = strip_checkpoint(best, args.out / "stripped.pt")
        shutil.copy2(stripped, args.ship)
        print(f"shipped {args.ship}")
    print(best)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .training import comparison_table, evaluate_many, report_json

    logging.basicConfig(level=logging.WARNING)
    reports = evaluate_many(
        args.weights, args.data, args.cache, args.imgsz, args.device, args.split
    )
    if args.json:
        print(report_json(reports[0] if len(reports) == 1 else reports))
    elif len(reports) == 1:
        report = reports[0]
        print(f"weights {report.weights}, {report.images} images, imgsz {report.imgsz}")
        print(report.as_table())
        print(f"inference {report.ms_per_image:.1f} ms/image")
    else:
        print(f"{reports[0].images} images, imgsz {args.imgsz}")
        print(comparison_table(reports))
    return 0
