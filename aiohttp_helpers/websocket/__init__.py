"""WebSockets: close codes, validated close, the handler wrapper, the registry, the client."""

from .client import ClientWebSocket, ReconnectPolicy, WSReconnector, ws_connect
from .close import (
    MAX_REASON_BYTES,
    CloseFrame,
    CloseRecord,
    WSClose,
    close_websocket,
    truncate_reason,
)
from .codes import CloseCodeInfo, Retry, Sender, check_close_code, close_code_info, may_send
from .handler import websocket_handler
from .registry import WebSocketRegistry
from .server import MessageKind, Messages, ServerWebSocket
from .testing import assert_closed_with, receive_close

__all__ = [
    "MAX_REASON_BYTES",
    "ClientWebSocket",
    "CloseCodeInfo",
    "CloseFrame",
    "CloseRecord",
    "MessageKind",
    "Messages",
    "ReconnectPolicy",
    "Retry",
    "Sender",
    "ServerWebSocket",
    "WSClose",
    "WSReconnector",
    "WebSocketRegistry",
    "assert_closed_with",
    "check_close_code",
    "close_code_info",
    "close_websocket",
    "may_send",
    "receive_close",
    "truncate_reason",
    "websocket_handler",
    "ws_connect",
]
