"""Safe uploads, lifecycle hooks and WebSocket close codes for aiohttp.web."""

from .config import UploadLimits, WebSocketSettings
from .errors import (
    BadRequest,
    BodyTooLarge,
    DecodedTooLarge,
    FieldTooLarge,
    FileTooLarge,
    HeadersTooLarge,
    HelpersError,
    InsufficientStorage,
    MalformedMultipart,
    NestingTooDeep,
    NotMultipart,
    PayloadTooLarge,
    PreambleTooLarge,
    RequestTimeout,
    TooManyFields,
    TooManyFiles,
    TooManyParts,
    TypeNotAllowed,
    UnsupportedEncoding,
    UnsupportedMediaType,
    UploadIdleTimeout,
)
from .lifecycle import AppState, Lifecycle
from .plugin import Helpers, configure, get_helpers, setup
from .signals import RequestSignals

__version__ = "0.1.0"

__all__ = [
    "AppState",
    "BadRequest",
    "BodyTooLarge",
    "DecodedTooLarge",
    "FieldTooLarge",
    "FileTooLarge",
    "HeadersTooLarge",
    "Helpers",
    "HelpersError",
    "InsufficientStorage",
    "Lifecycle",
    "MalformedMultipart",
    "NestingTooDeep",
    "NotMultipart",
    "PayloadTooLarge",
    "PreambleTooLarge",
    "RequestSignals",
    "RequestTimeout",
    "TooManyFields",
    "TooManyFiles",
    "TooManyParts",
    "TypeNotAllowed",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
    "UploadIdleTimeout",
    "UploadLimits",
    "WebSocketSettings",
    "__version__",
    "configure",
    "get_helpers",
    "setup",
]
