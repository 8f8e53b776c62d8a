"""Networking: wire framing now; asyncio servers and clients come next (see docs/impl.md)."""

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
