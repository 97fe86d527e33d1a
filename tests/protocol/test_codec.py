"""Framing and message shapes of the control protocol (sans-IO)."""

from __future__ import annotations

import contextlib
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bimmaild.protocol import codec
from bimmaild.protocol.codec import Notification, Request, Response, encode, frame_length, parse
from bimmaild.protocol.errors import FrameTooLarge, ProtocolError

HELLO_GOLDEN = bytes.fromhex("0000001f940001a568656c6c6f82a6636c69656e74a3646f63a870726f746f636f6c01")
RESPONSE_GOLDEN = bytes.fromhex("00000009940101c081a26f6bc3")


def test_golden_bytes_match_protocol_md() -> None:
    """docs/PROTOCOL.md shows these exact bytes; a framing change must update both."""
    assert encode(Request(1, "hello", {"client": "doc", "protocol": 1})) == HELLO_GOLDEN
    assert encode(Response(1, None, {"ok": True})) == RESPONSE_GOLDEN


def test_header_is_big_endian_length_of_body() -> None:
    frame = encode(Notification("account.changed", {"x": 1}))
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert parse(frame[4:]) == Notification("account.changed", {"x": 1})


def test_frame_over_limit_refused_from_header_alone() -> None:
    header = struct.pack(">I", 2**31)  # announces 2 GB: nothing must be allocated
    with pytest.raises(FrameTooLarge) as err:
        frame_length(header)
    assert err.value.data["length"] == 2**31
    assert frame_length(struct.pack(">I", 100), limit=100) == 100
    with pytest.raises(FrameTooLarge):
        frame_length(struct.pack(">I", 101), limit=100)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xc1", "reserved byte"),
        (b"\x93\x01", "truncated array"),
        (b"\x01\x02", "two documents"),
        (b"\x91" * 5000 + b"\xc0", "nesting too deep"),
        (b"\xdd\x3b\x9a\xca\x00", "array announcing 10**9 items"),
        (b"\x81\x01\x02", "integer map key"),
        (b"\xa2\xff\xfe", "invalid UTF-8 string"),
        (b"\xd4\x05\x00", "extension type"),
        (b"", "empty frame"),
    ],
)
def test_malformed_documents_are_protocol_errors(payload: bytes, why: str) -> None:
    with pytest.raises(ProtocolError):
        parse(payload)


@pytest.mark.parametrize(
    "doc",
    [
        {"not": "an array"},
        [],
        [7, 1, "x", {}],
        [0, 1, "x"],
        [0, -1, "x", {}],
        [0, 2**32, "x", {}],
        [0, True, "x", {}],
        [0, 1, 5, {}],
        [0, 1, "x", [1, 2]],
        [2, "event", "not a map"],
    ],
)
def test_wrong_shapes_are_protocol_errors(doc: object) -> None:
    with pytest.raises(ProtocolError):
        parse(msgpack.packb(doc))


def test_bad_params_keep_the_msgid_for_the_answer() -> None:
    with pytest.raises(ProtocolError) as err:
        parse(msgpack.packb([0, 42, "status", "params"]))
    assert err.value.data["msgid"] == 42
    assert err.value.field == "params"


def test_nil_params_mean_empty_map() -> None:
    assert parse(msgpack.packb([0, 3, "status", None])) == Request(3, "status", {})


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(
    msgid=st.integers(0, codec.MAX_MSGID),
    method=st.text(max_size=30),
    params=st.dictionaries(st.text(max_size=10), _values, max_size=5),
)
@settings(max_examples=300)
def test_request_round_trip(msgid: int, method: str, params: dict[str, object]) -> None:
    frame = encode(Request(msgid, method, params))
    assert frame_length(frame[:4]) == len(frame) - 4
    assert parse(frame[4:]) == Request(msgid, method, params)


@given(st.binary(max_size=200))
@settings(max_examples=2000)
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse(data)


def test_daemon_counts_the_values_of_a_request_but_a_client_reads_big_answers() -> None:
    """A 32 MiB frame of one-byte values would take gigabytes once decoded: the daemon refuses a
    request of more than MAX_REQUEST_VALUES before decoding; answers (10,000 messages) are bigger."""
    answer = msgpack.packb([1, 1, None, [{"id": i, "flags": []} for i in range(40_000)]])
    assert isinstance(parse(answer), Response)
    with pytest.raises(ProtocolError, match="values"):
        parse(answer, max_values=codec.MAX_REQUEST_VALUES)
    at_limit = msgpack.packb([0, 1, "x", {"ids": [0] * (codec.MAX_REQUEST_VALUES - 7)}])
    assert isinstance(parse(at_limit, max_values=codec.MAX_REQUEST_VALUES), Request)
    with pytest.raises(ProtocolError, match="values"):
        parse(
            msgpack.packb([0, 1, "x", {"ids": [0] * (codec.MAX_REQUEST_VALUES - 6)}]),
            max_values=codec.MAX_REQUEST_VALUES,
        )


@pytest.mark.parametrize(
    "ext",
    [
        b"\xd6\xff\x00\x00\x00\x01",
        b"\xd7\xff" + bytes(8),
        b"\xd4\x05\x00",
        b"\xc7\x00\x01",
        b"\x92\x01\xd8\x01" + bytes(16),
    ],
)
def test_extension_types_are_refused_timestamps_included(ext: bytes) -> None:
    """msgpack decodes the timestamp type (-1) itself, without ext_hook; the daemon refuses it too."""
    with pytest.raises(ProtocolError, match="extension"):
        parse(b"\x94\x00\x01\xa6status\x81\xa1x" + ext, max_values=codec.MAX_REQUEST_VALUES)
