"""Settings, resolved in one order: argument, `SIGNWATCH_*` variable, default."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = PROJECT_ROOT / "models" / "signwatch-signs.pt"
# The image size the shipped weights were trained at (see models/README.md).
MODEL_IMGSZ = 416


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _optional_bool(text: str) -> bool | None:
    return None if text.strip().lower() in {"", "auto"} else _bool(text)


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start; see `resolve` for the sources."""

    host: str = "127.0.0.1"
    port: int = 8000
    recordings: Path = PROJECT_ROOT / "recordings"
    weights: Path = DEFAULT_WEIGHTS
    max_upload_bytes: int = 2 * 1024**3
    max_duration_s: float = 3600.0
    workers: int = 1
    device: str = "cpu"
    imgsz: int = MODEL_IMGSZ
    conf: float = 0.25
    stride: int = 1
    batch: int = 4
    force_polling: bool | None = None
    reconcile_s: float = 5.0
    watch_step_ms: int = 5
    progress_interval_s: float = 0.25
    runner: str = "embedded"
    detector: str = "server.inference:YoloDetector"
    log_level: str = "info"


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "recordings": Path,
    "weights": Path,
    "max_upload_bytes": int,
    "max_duration_s": float,
    "workers": int,
    "device": str,
    "imgsz": int,
    "conf": float,
    "stride": int,
    "batch": int,
    "force_polling": _optional_bool,
    "reconcile_s": float,
    "watch_step_ms": int,
    "progress_interval_s": float,
    "runner": str,
    "detector": str,
    "log_level": str,
}


def resolve(
    args: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from explicit arguments, then the environment, then defaults.

    Args:
        args: values given on the command line or in code; None means unset.
        env: the environment (defaults to `os.environ`).

    Raises:
        ConfigError: a value cannot be parsed or is out of range.
    """
    args = args or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f"SIGNWATCH_{f.name.upper()}"
        if args.get(f.name) is not None:
            values[f.name] = args[f.name]
        elif env.get(name) is not None:
            try:
                values[f.name] = _PARSERS[f.name](env[name])
            except ValueError as exc:
                raise ConfigError(f"{name}={env[name]!r} is not valid: {exc}.") from exc
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    checks = [
        (0 < s.port < 65536, "port", "between 1 and 65535"),
        (s.max_upload_bytes > 0, "max_upload_bytes", "positive"),
        (s.max_duration_s > 0, "max_duration_s", "positive"),
        (s.workers >= 1, "workers", "at least 1"),
        (
            32 <= s.imgsz <= 4096 and s.imgsz % 32 == 0,
            "imgsz",
            "a multiple of 32 in 32..4096",
        ),
        (0.0 < s.conf < 1.0, "conf", "between 0 and 1"),
        (s.stride >= 1, "stride", "at least 1"),
        (s.batch >= 1, "batch", "at least 1"),
        (s.reconcile_s > 0, "reconcile_s", "positive"),
        (1 <= s.watch_step_ms <= 1000, "watch_step_ms", "in 1..1000"),
        (s.progress_interval_s >= 0, "progress_interval_s", "zero or positive"),
        (s.runner in {"embedded"}, "runner", "'embedded'"),
        (
            s.log_level in {"debug", "info", "warning", "error"},
            "log_level",
            "debug, info, warning or error",
        ),
    ]
    for ok, name, expected in checks:
        if not ok:
            raise ConfigError(
                f"Setting {name}={getattr(s, name)!r} must be {expected}."
            )
