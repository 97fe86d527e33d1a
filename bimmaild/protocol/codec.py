"""Wire format of the control socket: framing and message shapes, without I/O.

Every message is one msgpack document preceded by its length as a 4-byte
big-endian unsigned integer.  The length comes first so that a receiver can
refuse an oversized frame before buffering a byte of it, and so that any
front-end language can frame messages in a few lines.

Message shapes follow msgpack-RPC (and Neovim), with a map for params so that
fields can be added without breaking older peers::

    request       [0, msgid, method, params]    client -> daemon
    response      [1, msgid, error, result]     daemon -> client (error or result is nil)
    notification  [2, event, params]            daemon -> client (events)

A response to a message whose msgid could not be read carries msgid nil.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from bimmaild.protocol.errors import FrameTooLarge, ProtocolError

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

# A frame larger than this is refused before reading its body.
MAX_FRAME = 32 * 1024 * 1024
# Before the handshake a peer has no business sending more than a greeting.
MAX_HELLO_FRAME = 64 * 1024
# Bounds handed to the decoder so a tiny frame cannot announce huge containers.
MAX_CONTAINER_LEN = 100_000
# Values (scalars and containers) in one request, counted before decoding: a decoded value costs
# 30-70 bytes of Python memory for 1 byte of msgpack, so a 32 MiB frame of tiny values would take
# over 2 GB.  The largest legitimate request (10,000 message ids) holds about 10,000.
MAX_REQUEST_VALUES = 100_000

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2

MAX_MSGID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Request:
    msgid: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int | None
    error: dict[str, Any] | None
    result: Any


@dataclass(frozen=True, slots=True)
class Notification:
    event: str
    params: dict[str, Any]


Message = Request | Response | Notification


def frame_length(header: bytes, limit: int = MAX_FRAME) -> int:
    """Length announced by a 4-byte header; raises FrameTooLarge above ``limit``."""
    length: int = HEADER.unpack(header)[0]
    if length > limit:
        raise FrameTooLarge(
            f"frame of {length} bytes exceeds the limit of {limit} bytes",
            data={"length": length, "limit": limit},
        )
    return length


def encode(message: Message) -> bytes:
    """Serialize a message, header included."""
    if isinstance(message, Request):
        body: list[Any] = [REQUEST, message.msgid, message.method, message.params]
    elif isinstance(message, Response):
        body = [RESPONSE, message.msgid, message.error, message.result]
    else:
        body = [NOTIFICATION, message.event, message.params]
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    if len(payload) > MAX_FRAME:
        raise FrameTooLarge(f"message of {len(payload)} bytes exceeds the frame limit")
    return HEADER.pack(len(payload)) + payload


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not part of the protocol")


# Bytes that follow the first byte of a scalar, by first byte (fixed-size types).
_FIXED_SIZE = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED_SIZE |= {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
# Width of the length that follows the first byte of a str/bin (length in bytes) or an array/map
# (length in items; a map item is a key and a value).
_STR_LEN = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
_ARRAY_LEN = {0xDC: 2, 0xDD: 4}
_MAP_LEN = {0xDE: 2, 0xDF: 4}
_EXT = frozenset((0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))


def check_values(payload: bytes, limit: int = MAX_REQUEST_VALUES) -> None:
    """Refuse, before decoding, a document of more than ``limit`` values or with an extension type.

    The decoder bounds each container (``MAX_CONTAINER_LEN``) and the nesting, not the total:
    many small containers or scalars would blow a 32 MiB frame up to gigabytes.  This walk reads
    only the type bytes and lengths and stops at the limit, so it costs at most ``limit`` steps.
    It also catches the timestamp extension (type -1), which msgpack decodes itself without
    calling ``ext_hook``.  Malformed input it cannot follow is left to the decoder to refuse.
    """
    pos, pending, count, end = 0, 1, 0, len(payload)
    while pending and pos < end:
        pending -= 1
        count += 1
        if count > limit:
            raise ProtocolError(f"a request holds at most {limit} values")
        first = payload[pos]
        pos += 1
        if first < 0x80 or first >= 0xE0:  # fixint
            continue
        if first < 0x90:  # fixmap
            pending += 2 * (first & 0x0F)
        elif first < 0xA0:  # fixarray
            pending += first & 0x0F
        elif first < 0xC0:  # fixstr
            pos += first & 0x1F
        elif first in _FIXED_SIZE:
            pos += _FIXED_SIZE[first]
        elif first in _STR_LEN:
            width = _STR_LEN[first]
            pos += width + int.from_bytes(payload[pos : pos + width], "big")
        elif first in _ARRAY_LEN:
            width = _ARRAY_LEN[first]
            pending += int.from_bytes(payload[pos : pos + width], "big")
            pos += width
        elif first in _MAP_LEN:
            width = _MAP_LEN[first]
            pending += 2 * int.from_bytes(payload[pos : pos + width], "big")
            pos += width
        elif first in _EXT:
            raise ProtocolError("msgpack extension types are not part of the protocol")
        else:  # 0xC1, never used: the decoder refuses it
            return


def decode_document(payload: bytes) -> Any:
    """Decode one msgpack document with limits; any failure is a ProtocolError."""
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            ext_hook=_refuse_ext,
        )
    except ProtocolError:
        raise
    except Exception as exc:
        # ValueError covers StackError (nesting), ExtraData, bad UTF-8 and limits;
        # whatever else the decoder may raise on hostile bytes is the peer's fault too.
        raise ProtocolError(f"frame is not a valid msgpack document: {type(exc).__name__}") from None


def _msgid(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MSGID:
        return value
    return None


def parse(payload: bytes, *, max_values: int | None = None) -> Message:
    """Decode a frame body into a message.

    Raises ProtocolError; its ``data["msgid"]`` holds the msgid when one could
    be read, so the error can still be matched to the request.  The daemon
    passes ``max_values`` (see ``check_values``); a client reading a large
    answer (10,000 messages) does not.
    """
    if max_values is not None:
        check_values(payload, max_values)
    doc = decode_document(payload)
    if not isinstance(doc, list) or not doc or doc[0] not in (REQUEST, RESPONSE, NOTIFICATION):
        raise ProtocolError("a message is an array whose first item is 0, 1 or 2")
    kind = doc[0]
    if kind == REQUEST:
        return _parse_request(doc)
    if kind == RESPONSE:
        if len(doc) != 4 or (doc[1] is not None and _msgid(doc[1]) is None):
            raise ProtocolError("a response is [1, msgid, error, result]")
        error = doc[2]
        if error is not None and not isinstance(error, dict):
            raise ProtocolError("a response error is nil or a map")
        return Response(_msgid(doc[1]), error, doc[3])
    if len(doc) != 3 or not isinstance(doc[1], str) or not isinstance(doc[2], dict):
        raise ProtocolError("a notification is [2, event, params-map]")
    return Notification(doc[1], doc[2])


def _parse_request(doc: list[Any]) -> Request:
    msgid = _msgid(doc[1]) if len(doc) > 1 else None
    data = {"msgid": msgid} if msgid is not None else None
    if len(doc) != 4:
        raise ProtocolError("a request is [0, msgid, method, params]", data=data)
    if msgid is None:
        raise ProtocolError("a request msgid is an integer from 0 to 2**32-1", field="msgid")
    method, params = doc[2], doc[3]
    if not isinstance(method, str):
        raise ProtocolError("a request method is a string", field="method", data=data)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError("request params are a map", field="params", data=data)
    return Request(msgid, method, params)
