"""Networking: wire framing, the asyncio server, the client library, cluster files and local
clusters (see docs/impl.md). Import the parts from their modules: ``server``, ``client``,
``cluster``, ``local_cluster``."""

from .framing import (
    MAX_FRAME,
    BadAuthentication,
    DecoderFailed,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    FrameTooShort,
    MalformedMessage,
    MalformedPayload,
    MessageDecoder,
    TruncatedFrame,
    encode_frame,
    encode_message,
)

__all__ = [
    "MAX_FRAME", "BadAuthentication", "DecoderFailed", "FrameDecoder", "FrameError",
    "FrameTooLarge", "FrameTooShort", "MalformedMessage", "MalformedPayload", "MessageDecoder",
    "TruncatedFrame", "encode_frame", "encode_message",
]
