"""AWS event-stream framing (``application/vnd.amazon.eventstream``) for response streams.

A frame is: prelude (total length, headers length, both uint32 BE) + CRC32 of the prelude,
the headers, the payload, and a CRC32 of everything before it. Only string headers (type 7)
are needed for SageMaker's ResponseStream union.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence

_STRING_HEADER_TYPE = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def _encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    parts = []
    for name, value in headers:
        name_bytes = name.encode()
        value_bytes = value.encode()
        parts.append(bytes([len(name_bytes)]) + name_bytes)
        parts.append(bytes([_STRING_HEADER_TYPE]) + struct.pack(">H", len(value_bytes)) + value_bytes)
    return b"".join(parts)


def encode_frame(headers: Sequence[tuple[str, str]], payload: bytes) -> bytes:
    encoded_headers = _encode_headers(headers)
    total_length = _PRELUDE.size + _CRC.size + len(encoded_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total_length, len(encoded_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude)) + encoded_headers + payload
    return head + _CRC.pack(zlib.crc32(head))


_PAYLOAD_PART_HEADERS = (
    (":event-type", "PayloadPart"),
    (":content-type", "application/octet-stream"),
    (":message-type", "event"),
)


def payload_part(data: bytes) -> bytes:
    return encode_frame(_PAYLOAD_PART_HEADERS, data)


def model_stream_error(message: str, error_code: str) -> bytes:
    """ErrorCode is one of SageMaker's documented values: ModelInvocationTimeExceeded, StreamBroken."""
    body = json.dumps({"Message": message, "ErrorCode": error_code}).encode()
    return encode_frame(
        (
            (":exception-type", "ModelStreamError"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ),
        body,
    )


def internal_stream_failure(message: str) -> bytes:
    body = json.dumps({"Message": message}).encode()
    return encode_frame(
        (
            (":exception-type", "InternalStreamFailure"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ),
        body,
    )


class FrameError(ValueError):
    pass


def decode_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Decode complete frames (used by tests and tooling; the gateway only encodes)."""
    frames = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 16:
            raise FrameError("truncated prelude")
        total, headers_length = _PRELUDE.unpack_from(data, offset)
        (prelude_crc,) = _CRC.unpack_from(data, offset + 8)
        if zlib.crc32(data[offset : offset + 8]) != prelude_crc:
            raise FrameError("bad prelude CRC")
        end = offset + total
        if end > len(data):
            raise FrameError("truncated frame")
        (message_crc,) = _CRC.unpack_from(data, end - 4)
        if zlib.crc32(data[offset : end - 4]) != message_crc:
            raise FrameError("bad message CRC")
        cursor = offset + 12
        headers_end = cursor + headers_length
        headers: dict[str, str] = {}
        while cursor < headers_end:
            name_length = data[cursor]
            name = data[cursor + 1 : cursor + 1 + name_length].decode()
            cursor += 1 + name_length
            if data[cursor] != _STRING_HEADER_TYPE:
                raise FrameError(f"unsupported header type {data[cursor]}")
            (value_length,) = struct.unpack_from(">H", data, cursor + 1)
            headers[name] = data[cursor + 3 : cursor + 3 + value_length].decode()
            cursor += 3 + value_length
        frames.append((headers, data[headers_end : end - 4]))
        offset = end
    return frames
