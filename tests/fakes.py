"""Detector factories the test servers load by name (SIGNWATCH_DETECTOR)."""

from __future__ import annotations

import os
from pathlib import Path

from server.inference import FakeDetector, InferenceOptions


def make_detector(weights: Path, options: InferenceOptions) -> FakeDetector:
    """A fast fake; SIGNWATCH_FAKE_DELAY_S slows it per frame to keep jobs running."""
    return FakeDetector(delay_s=float(os.environ.get("SIGNWATCH_FAKE_DELAY_S", "0")))


def crash_detector(weights: Path, options: InferenceOptions) -> FakeDetector:
    """Kills its own worker process mid-job, as a native crash would."""
    return _Crasher()


class _Crasher(FakeDetector):
    def detect(self, frames):  # type: ignore[no-untyped-def]
        if self._seen >= 20:
            os._exit(3)
        return super().detect(frames)
