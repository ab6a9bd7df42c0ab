"""Project errors: one base class, a few specific subclasses with HTTP statuses."""

from __future__ import annotations


class SignwatchError(Exception):
    """Base class of every error this project raises on purpose."""

    status_code = 500
    code = "internal"


class ConfigError(SignwatchError):
    """A setting has a value the server cannot start with."""

    code = "bad_config"


class DatasetError(SignwatchError):
    """A training or evaluation data set is missing or malformed."""

    code = "bad_dataset"


class ModelError(SignwatchError):
    """Model weights are missing or cannot be loaded."""

    code = "bad_model"


class NotFoundError(SignwatchError):
    """The requested recording or file does not exist."""

    status_code = 404
    code = "not_found"


class BadRequestError(SignwatchError):
    """The request is malformed: a bad id, field or parameter."""

    status_code = 400
    code = "bad_request"


class InvalidUploadError(SignwatchError):
    """An upload was refused: not a video, empty, truncated, out of limits."""

    status_code = 422
    code = "invalid_upload"


class UploadTooLargeError(InvalidUploadError):
    """An upload exceeded the configured size limit."""

    status_code = 413
    code = "too_large"


class ConflictError(SignwatchError):
    """The action does not fit the recording's current state."""

    status_code = 409
    code = "conflict"
