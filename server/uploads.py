"""Receiving an upload: stream the multipart body to disk, validate, publish.

The upload is written into a hidden staging folder (`.upload-<id>`, which the
watcher ignores) and renamed to `recordings/<id>` only once it is a valid video
with its `status.json` in place, so a recording never appears half-kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quart import Request
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from . import video
from .config import Settings
from .errors import BadRequestError, InvalidUploadError, UploadTooLargeError
from .inference import InferenceOptions
from .recordings import Status, new_id, new_status, write_status_file

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
STAGING_PREFIX = ".upload-"
_MAX_FIELD_BYTES = 1024
_SAFE_EXT = re.compile(r"\.[a-z0-9]{1,10}")
_OPTION_FIELDS = {"imgsz", "conf", "stride", "batch", "annotate"}


@dataclass
class _Received:
    name: str | None = None
    path: Path | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


async def receive(request: Request, settings: Settings) -> Status:
    """Stream an upload into a new recording folder and return its first status.

    Raises:
        BadRequestError: not multipart, no `file` field, bad option fields.
        UploadTooLargeError: the file exceeds `settings.max_upload_bytes`.
        InvalidUploadError: the file is empty or not a usable video.
    """
    boundary = _boundary(request)
    rec_id = new_id()
    staging = settings.recordings / f"{STAGING_PREFIX}{rec_id}"
    staging.mkdir(parents=True)
    try:
        got = await _stream(request.body, boundary, staging, settings.max_upload_bytes)
        options = parse_options(got.fields, settings)
        if got.path is None or got.name is None:
            raise BadRequestError(
                f"Expected the video in multipart field {FILE_FIELD!r}; "
                f"got fields {sorted(got.fields)!r}."
            )
        if got.size == 0:
            raise InvalidUploadError(f"The uploaded file {got.name!r} is empty.")
        limits = video.VideoLimits(
            max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_s
        )
        info = await asyncio.to_thread(video.probe, got.path, limits)
        status = new_status(rec_id, got.name, video=info.as_dict(), options=options)
        write_status_file(staging, status)
        os.rename(staging, settings.recordings / rec_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("accepted upload %s (%r, %d bytes)", rec_id, got.name, got.size)
    return status


def _boundary(request: Request) -> bytes:
    if request.mimetype != "multipart/form-data":
        raise BadRequestError(
            f"Expected a multipart/form-data body with a {FILE_FIELD!r} field, "
            f"got content type {request.mimetype or 'none'!r}."
        )
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise BadRequestError("The multipart body has no boundary parameter.")
    return boundary.encode()


async def _stream(
    body: AsyncIterable[bytes], boundary: bytes, staging: Path, limit: int
) -> _Received:
    """Feed the body through a multipart decoder, writing the file part to disk."""
    decoder = MultipartDecoder(boundary)
    got = _Received()
    part: Field | File | None = None
    buffer = bytearray()
    handle = None
    try:
        async for chunk in _chunks(body):
            decoder.receive_data(chunk)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, File):
                    if event.name != FILE_FIELD or handle is not None:
                        raise BadRequestError(
                            f"Unexpected file in field {event.name!r}; send the "
                            f"video in field {FILE_FIELD!r}, once."
                        )
                    part = event
                    got.name = _display_name(event.filename)
                    got.path = staging / f"source{_extension(got.name)}"
                    handle = got.path.open("wb")
                elif isinstance(event, Field):
                    part, buffer = event, bytearray()
                elif isinstance(event, Data):
                    if isinstance(part, File) and handle is not None:
                        got.size += len(event.data)
                        if got.size > limit:
                            raise UploadTooLargeError(
                                f"The upload exceeds the limit of {limit} bytes."
                            )
                        await asyncio.to_thread(handle.write, event.data)
                    elif isinstance(part, Field):
                        buffer += event.data
                        if len(buffer) > _MAX_FIELD_BYTES:
                            raise BadRequestError(
                                f"Form field {part.name!r} is too long."
                            )
                        if not event.more_data:
                            got.fields[part.name] = buffer.decode("utf-8", "replace")
                event = decoder.next_event()
        if not isinstance(event, Epilogue):
            raise BadRequestError(
                "The multipart body ended before its closing boundary."
            )
    except ValueError as exc:
        raise BadRequestError(f"The multipart body is malformed: {exc}") from exc
    finally:
        if handle is not None:
            handle.close()
    return got


async def _chunks(body: AsyncIterable[bytes]) -> AsyncIterable[bytes | None]:
    async for chunk in body:
        if chunk:
            yield chunk
    yield None  # tells the decoder the body is complete


def _display_name(filename: str | None) -> str:
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    return name[:255] or "upload"


def _extension(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return ext if _SAFE_EXT.fullmatch(ext) else ".bin"


def parse_options(fields: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Inference options of an upload: form fields over the server defaults.

    Blank fields count as absent: a plain HTML form posts every input.
    """
    fields = {key: text for key, text in fields.items() if text.strip()}
    unknown = sorted(set(fields) - _OPTION_FIELDS)
    if unknown:
        raise BadRequestError(
            f"Unknown form field {unknown[0]!r}; expected {FILE_FIELD!r} and "
            f"optionally {sorted(_OPTION_FIELDS)!r}."
        )
    base = InferenceOptions(
        imgsz=settings.imgsz,
        conf=settings.conf,
        stride=settings.stride,
        batch=settings.batch,
        device=settings.device,
    )
    return InferenceOptions.from_form(fields, base).as_dict()


def remove_stale_staging(root: Path) -> int:
    """Delete staging folders left by a crash mid-upload; return how many."""
    removed = 0
    for entry in root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    for entry in root.glob(".trash-*"):
        shutil.rmtree(entry, ignore_errors=True)
    if removed:
        logger.warning("removed %d half-received uploads left by a crash", removed)
    return removed
