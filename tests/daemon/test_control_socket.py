"""Bad input on the control socket: structured errors, only the offending connection closed,
other clients unaffected, nothing stored changes.  Raw sockets, so nothing is filtered by the client.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from typing import Any, cast

import msgpack
import pytest

from bimmailctl.client import Client
from bimmaild.protocol.codec import MAX_HELLO_FRAME, Request, encode
from bimmaild.protocol.errors import ErrorCode
from tests.helpers import RawConnection, RunningDaemon, account_params


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def _assert_daemon_serves(daemon: RunningDaemon) -> None:
    async with await Client.connect(daemon.socket_path) as c:
        assert (await c.call("status"))["pid"] > 0


@pytest.mark.parametrize(
    "payload",
    [b"\xc1", b"\x93\x01", msgpack.packb({"a": 1}), msgpack.packb([0, "id", "status", {}]), b"\x91" * 3000 + b"\xc0"],
    ids=["reserved-byte", "truncated", "not-an-array", "string-msgid", "deep-nesting"],
)
async def test_malformed_frame_gets_error_and_only_that_connection_closes(
    daemon: RunningDaemon, payload: bytes
) -> None:
    async with await Client.connect(daemon.socket_path) as bystander:
        raw = await RawConnection.open(daemon.socket_path)
        await raw.hello()
        await raw.send(frame(payload))
        response = await raw.response()
        assert response.error is not None and response.error["code"] == ErrorCode.PROTOCOL_ERROR
        assert await raw.closed_by_daemon()
        raw.close()
        assert (await bystander.call("status"))["pid"] > 0


async def test_oversized_frame_refused_before_reading_it(daemon: RunningDaemon) -> None:
    raw = await RawConnection.open(daemon.socket_path)
    await raw.send(struct.pack(">I", 2**31))  # announces 2 GB and sends nothing more
    response = await raw.response()
    assert response.error is not None and response.error["code"] == ErrorCode.FRAME_TOO_LARGE
    assert await raw.closed_by_daemon()
    raw.close()
    # Before the handshake the limit is tighter.
    raw = await RawConnection.open(daemon.socket_path)
    await raw.send(frame(msgpack.packb([0, 1, "hello", {"client": "x" * MAX_HELLO_FRAME, "protocol": 1}])))
    response = await raw.response()
    assert response.error is not None and response.error["code"] == ErrorCode.FRAME_TOO_LARGE
    raw.close()
    await _assert_daemon_serves(daemon)


async def test_handshake_rules(daemon: RunningDaemon) -> None:
    raw = await RawConnection.open(daemon.socket_path)
    response = await raw.request("status", {})
    assert response.error is not None and response.error["code"] == ErrorCode.HANDSHAKE_REQUIRED
    response = await raw.request("hello", {"protocol": 99})
    assert response.error is not None and response.error["code"] == ErrorCode.UNSUPPORTED_PROTOCOL
    assert response.error["data"]["supported"] == [1]
    await raw.hello()
    response = await raw.request("hello", {"protocol": 1}, msgid=7)
    assert response.msgid == 7
    assert response.error is not None and response.error["code"] == ErrorCode.ALREADY_GREETED
    response = await raw.request("status", {}, msgid=8)  # the connection goes on
    assert response.error is None and response.msgid == 8
    raw.close()


async def test_unknown_method_and_bad_params_keep_the_connection(daemon: RunningDaemon) -> None:
    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    response = await raw.request("account.explode", {}, msgid=2)
    assert response.error is not None and response.error["code"] == ErrorCode.UNKNOWN_METHOD
    assert "account.list" in response.error["data"]["methods"]
    for msgid, (method, params, field) in enumerate(
        [
            ("account.show", {}, "account"),
            ("account.show", {"account": ["Work"]}, "account"),
            ("account.add", {**account_params(), "imap": {"host": "h", "port": "993"}}, "imap.port"),
            ("account.add", {**account_params(), "email": "nope"}, "email"),
            ("account.add", {**account_params(), "smtp": {"host": "h", "port": 70000}}, "smtp.port"),
            ("account.delete", {"account": "Work", "confirm": "yes"}, "confirm"),
            ("subscribe", {"topics": ["no.such.event"]}, "topics[0]"),
        ],
        start=3,
    ):
        response = await raw.request(method, params, msgid=msgid)
        assert response.msgid == msgid
        assert response.error is not None, method
        assert response.error["code"] == ErrorCode.INVALID_PARAMS, response.error
        assert response.error["field"] == field
        assert set(response.error) == {"code", "name", "message", "field", "data"}
    response = await raw.request("account.list", {}, msgid=100)
    assert response.error is None and response.result == []
    raw.close()


async def test_wrong_type_for_every_param_of_every_method(daemon: RunningDaemon) -> None:
    """Each declared param, given a value of the wrong type, is refused naming that param."""
    from bimmaild.protocol.methods import METHODS

    wrong = {"str": 12, "int": "12", "bool": "yes", "map": "x", "list": "x", "str|int": 1.5}
    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    msgid = 10
    for method in METHODS:
        for param in method.params:
            msgid += 1
            sample = {"str": "Work", "str|int": "Work", "int": 1, "bool": False, "list": [], "map": {}}
            base: dict[str, Any] = {
                "hello": {"protocol": 1},
                "account.add": account_params(),
            }.get(method.name, {p.name: sample[p.kind] for p in method.params if p.required})
            params = {**base, param.name: wrong[param.kind]}
            response = await raw.request(method.name, params, msgid=msgid)
            assert response.error is not None, (method.name, param.name)
            assert response.error["code"] == ErrorCode.INVALID_PARAMS, (method.name, param.name, response.error)
            assert response.error["field"] == param.name
    raw.close()


async def test_client_disconnecting_mid_request_harms_nothing(daemon: RunningDaemon, client: Client) -> None:
    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    whole = encode(Request(5, "account.add", account_params()))
    await raw.send(whole[: len(whole) // 2])  # half a frame, then gone
    raw.writer.transport.abort()
    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    await raw.send(encode(Request(6, "account.add", account_params(name="Gone"))))
    raw.writer.transport.abort()  # a whole request, then gone before the answer
    for _ in range(50):
        if [a["name"] for a in await client.call("account.list")] == ["Gone"]:
            break
        await asyncio.sleep(0.02)
    assert [a["name"] for a in await client.call("account.list")] == ["Gone"]


async def test_bad_input_changes_nothing_stored(daemon: RunningDaemon, client: Client) -> None:
    await client.call("account.add", account_params())
    db = sqlite3.connect(daemon.data_dir / "bimmail.sqlite3")
    before = db.execute("SELECT * FROM accounts").fetchall()
    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    for params in (
        {"account": "Work", "imap": {"port": -1}},
        {"account": "Work", "name": 5},
        {"account": "Work", "bogus": 1},
    ):
        response = await raw.request("account.modify", params)
        assert response.error is not None
    await raw.send(frame(b"\xc1"))
    raw.close()
    assert db.execute("SELECT * FROM accounts").fetchall() == before
    db.close()


async def test_requests_on_one_connection_run_concurrently(client: Client) -> None:
    results = await asyncio.gather(*(client.call("status") for _ in range(50)))
    assert len({r["pid"] for r in results}) == 1


async def test_slow_event_reader_is_disconnected_not_buffered(daemon: RunningDaemon, client: Client) -> None:
    """A subscriber that never reads loses its connection; the daemon's memory stays bounded."""
    from bimmaild.control import connection

    raw = await RawConnection.open(daemon.socket_path)
    await raw.hello()
    assert (await raw.request("subscribe", {"topics": ["account.changed"]}, msgid=2)).error is None
    transport = cast(asyncio.Transport, raw.writer.transport)
    transport.pause_reading()  # our side stops reading: the daemon's writes back up
    await client.call("account.add", account_params())
    for i in range(connection.EVENT_QUEUE_SIZE * 3):
        await client.call("account.modify", {"account": "Work", "auto_fetch": i % 2 == 0})
    assert (await client.call("status"))["accounts"]["total"] == 1
    transport.resume_reading()
    data = b""
    while chunk := await asyncio.wait_for(raw.reader.read(1 << 20), 5):
        data += chunk
    # Fewer events than were published reached us, and then the daemon closed the connection.
    assert data.count(b"account.changed") < connection.EVENT_QUEUE_SIZE * 3
    raw.close()
