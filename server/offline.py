"""Keep ultralytics off the network and out of the user's home directory.

Must run before the first `import ultralytics`: its settings and the online
check are read at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

# Integrations that would phone home or log to third-party services.
_INTEGRATIONS = ("sync", "hub", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb")
_CONFIG_DIR = Path(__file__).resolve().parent.parent / ".cache" / "ultralytics"


def configure() -> None:
    """Set the environment ultralytics reads so nothing is fetched at run time."""
    os.environ.setdefault("YOLO_OFFLINE", "true")
    # Never pip-install missing packages at run time; the tracker's `lap` is a
    # declared dependency instead.
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    if "YOLO_CONFIG_DIR" not in os.environ:
        _CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(_CONFIG_DIR)
    _disable_settings_sync()


def _disable_settings_sync() -> None:
    from ultralytics.utils import SETTINGS

    off = {key: False for key in _INTEGRATIONS if SETTINGS.get(key)}
    if off:
        SETTINGS.update(**off)  # type: ignore[no-untyped-call]
