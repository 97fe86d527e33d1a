"""Hostile input on the control socket (issue 9): fuzzing the decoder and the router.

What is proven here:

* the decoder (``codec.parse`` with the daemon's limits) raises nothing but ProtocolError on any
  bytes: random, mutated valid frames, oversized strings/arrays/maps, deep nesting, extension
  types, documents of too many values;
* the router (``Router.dispatch`` of the daemon under test, with a real Session) turns every
  request into a response whose error, if any, is the structured object ``{code, name, message,
  field, data}`` with a known code — never ``internal`` (a bug) and never an input echoed in full:
  wrong types for every param of every method (generated from ``METHODS``), unknown methods, huge
  msgids, params of the declared shapes with edge values that reach the handlers;
* through the real socket of that daemon, a few thousand mutated frames on several connections
  are each answered with a structured error or an answer, or end only their own connection, while
  a well-behaved client keeps getting answers (its slowest answer is bounded);
* memory stays bounded: a header announcing 2 GB allocates nothing, and a 32 MiB frame of tiny
  values costs no more than an honest 32 MiB frame (VmHWM of a real ``bimmaild`` process).

Most cases are sans-IO: hypothesis builds a payload, the test decodes it as the connection does
and dispatches the request on the daemon's own router, in the daemon's event loop.  That loop
resolves no host name and connects only to loopback, so a fuzzed ``account.add`` or ``fetch``
never reaches the network.  Every hypothesis test is derandomized (CI reproduces any failure) and
its example count explicit; together they run about 121,000 cases (below a minute on 2 cores).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import random
import shutil
import socket
import struct
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bimmaild.daemon
from bimmailctl.client import Client
from bimmaild.control import connection
from bimmaild.control.router import Router, Session
from bimmaild.control.server import ControlServer
from bimmaild.protocol.codec import (
    HEADER_SIZE,
    MAX_CONTAINER_LEN,
    MAX_FRAME,
    MAX_MSGID,
    MAX_REQUEST_VALUES,
    Request,
    Response,
    encode,
    parse,
)
from bimmaild.protocol.errors import ErrorCode, ProtocolError
from bimmaild.protocol.methods import METHODS, METHODS_BY_NAME, Method
from bimmaild.protocol.schema import Param
from tests.helpers import RawConnection, RunningDaemon, daemon_config, spawn_daemon, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot

# Explicit and reproducible: CI runs exactly these examples (derandomize) and keeps no database.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SOCKET_SEED = 20260509
SOCKET_FRAMES = 3000
# A dispatch that takes longer than this is a hang (the slowest legitimate fuzzed call, a
# connection test to a closed loopback port with its alternatives, takes well under a second).
DISPATCH_TIMEOUT = 30.0
# The well-behaved client's slowest answer while the socket is fuzzed: "bounded", generously.
BYSTANDER_MAX_SECONDS = 5.0
# Errors quote a bounded part of the input (a value cut short, a param up to its max_len: 64 KiB
# of recipients at most), never a part that grows with the frame (up to 32 MiB).
MAX_ERROR_TEXT = 70_000
MiB = 1024 * 1024

# Payload of the closed loopback port the fuzzed accounts point at (discard: nothing listens).
CLOSED_PORT = 9


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class LoopbackOnlyLoop(asyncio.SelectorEventLoop):
    """The fuzzed daemon's event loop: host names never resolve and only loopback addresses
    connect, so fuzzed connection tests, fetches and sends stay on this machine and never wait
    on a resolver or a black-holed route."""

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, "fuzzing: no name resolution")
        return await super().getaddrinfo(host, port, *args, **kwargs)

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        host = args[1] if len(args) > 1 else kwargs.get("host")
        if host is not None and not _loopback(host):
            raise OSError(errno.ENETUNREACH, "fuzzing: loopback only")
        return await super().create_connection(*args, **kwargs)


# -- the daemon under test and the oracle ------------------------------------------------------


class Harness:
    """A daemon in its own loop, its router, and the checks every answer must pass."""

    def __init__(self, runner: asyncio.Runner, running: RunningDaemon, router: Router) -> None:
        self.runner = runner
        self.running = running
        self.router = router
        self.greeted = Session(os.getuid(), os.getpid())
        self.outcomes: Counter[str] = Counter()

    def dispatch(self, session: Session, request: Request) -> Response:
        assert not self.running.task.done(), "the daemon died"
        coro = asyncio.wait_for(self.router.dispatch(session, request), DISPATCH_TIMEOUT)
        response = self.runner.run(coro)
        check_response(response, request.msgid)
        self.outcomes[f"{request.method[:30]}: {response.error['name'] if response.error else 'result'}"] += 1
        return response

    def answer(self, payload: bytes, session: Session | None = None) -> tuple[Response, bool]:
        """What the connection does with one frame body: (the response, whether it closes)."""
        try:
            message = parse(payload, max_values=MAX_REQUEST_VALUES)
        except ProtocolError as exc:
            response = Response(exc.data.get("msgid"), exc.to_wire(), None)
            check_response(response, exc.data.get("msgid"))
            self.outcomes["closed: " + exc.code.wire_name] += 1
            return response, True
        except Exception as exc:
            raise AssertionError(f"the decoder raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(message, Request):
            self.outcomes["closed: not a request"] += 1
            return Response(None, ProtocolError("not a request").to_wire(), None), True
        return self.dispatch(session or self.greeted, message), False

    def ensure_accounts(self) -> None:
        """Accounts Work and Home exist again (fuzzed account.delete calls remove them)."""
        existing = self.dispatch(self.greeted, Request(11, "account.list", {})).result
        for name in {"Work", "Home"} - {a["name"] for a in existing}:
            response = self.dispatch(self.greeted, Request(12, "account.add", _account_add_params(name)))
            assert response.error is None, response.error

    def fresh(self) -> Session:
        return Session(os.getuid(), os.getpid())

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "Harness()"


def check_response(response: Response, msgid: int | None) -> None:
    """The structured error path, and only it: known code, bounded text, encodable frame."""
    assert response.msgid == msgid
    frame = encode(response)  # raises if the daemon could not send it
    assert len(frame) <= MAX_FRAME + HEADER_SIZE
    error = response.error
    if error is None:
        return
    assert set(error) == {"code", "name", "message", "field", "data"}, error
    code = ErrorCode(error["code"])
    assert code != ErrorCode.INTERNAL, f"internal error (a daemon bug): {error['message']}"
    assert error["name"] == code.wire_name
    assert isinstance(error["message"], str) and 0 < len(error["message"]) <= MAX_ERROR_TEXT, error["message"][:300]
    assert error["field"] is None or (isinstance(error["field"], str) and len(error["field"]) <= MAX_ERROR_TEXT)
    assert isinstance(error["data"], dict)


def _recording_server(found: list[ControlServer]) -> type[ControlServer]:
    class Recording(ControlServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            found.append(self)

    return Recording


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot) -> Iterator[Harness]:
    """The daemon of ``tests.helpers.start_daemon``, in a loopback-only loop, with its router."""
    short = Path(tempfile.mkdtemp(prefix="bm-fz-", dir="/tmp"))
    runner = asyncio.Runner(loop_factory=LoopbackOnlyLoop)
    servers: list[ControlServer] = []
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bimmaild.daemon, "ControlServer", _recording_server(servers))
            running = runner.run(start_daemon(daemon_config(short, tmp_path_factory.mktemp("fuzz"))))
        try:
            h = Harness(runner, running, servers[0].router)
            _populate(h, dovecot)
            yield h
        finally:
            runner.run(stop_daemon(running))
    finally:
        runner.close()
        shutil.rmtree(short, ignore_errors=True)


def _populate(h: Harness, dovecot: Dovecot) -> None:
    """Things for the fuzzed handlers to find: accounts Work and Home (ids 1, 2) on a closed loopback
    port, account Mail (id 3) with messages 1-5 fetched from the test Dovecot (then pointed at the
    closed port too, so that fuzzed fetches fail fast), a project."""
    assert h.dispatch(h.greeted, Request(1, "hello", {"protocol": 1, "client": "fuzz"})).error is None
    h.ensure_accounts()
    user = dovecot.add_user()
    user.deliver_many([MESSAGE % (i, i) for i in range(1, 6)])
    mail = {
        **_account_add_params("Mail"),
        "email": user.login,
        "password": user.password,
        "imap": {"host": "127.0.0.1", "port": dovecot.ports["imap"], "security": "starttls"},
        "tls_ca_file": str(dovecot.tls.ca_file),
    }
    assert h.dispatch(h.greeted, Request(2, "account.add", mail)).error is None
    fetched = h.dispatch(h.greeted, Request(3, "fetch", {"accounts": ["Mail"], "wait": True}))
    assert fetched.error is None and fetched.result["accounts"][0]["new"] == 5, fetched
    closed = {"account": "Mail", "imap": {"port": CLOSED_PORT, "security": "none"}}
    assert h.dispatch(h.greeted, Request(4, "account.modify", closed)).error is None
    assert h.dispatch(h.greeted, Request(5, "project.add", {"name": "P"})).error is None


MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: fuzz %d\r\nMessage-ID: <%d@fuzz>\r\n\r\nbody\r\n"


def _account_add_params(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "email": f"{name.lower()}@example.org",
        "password": "pw",
        "test": False,
        "imap": {"host": "127.0.0.1", "port": CLOSED_PORT, "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": CLOSED_PORT, "security": "none", "auth": False},
    }


# -- params from the declarations -------------------------------------------------------------

_SAMPLE: dict[str, Any] = {
    "str": "Work",
    "str|int": "Work",
    "int": 1,
    "bool": False,
    "list": [],
    "map": {},
    "bin": b"x",
}


def _item_param(param: Param) -> Param:
    """The declaration of one item of a list param, as schema.validate builds it."""
    assert param.item_kind is not None
    fields = param.fields if param.item_kind == "map" else None
    return Param("", param.item_kind, "", max_len=param.max_len, fields=fields)


def sample(param: Param) -> Any:
    """A value of the declared shape (every field of a map, one item in a list)."""
    if param.choices:
        return param.choices[0]
    if param.kind == "map" and param.fields:
        return {f.name: sample(f) for f in param.fields}
    if param.kind == "list" and param.item_kind:
        return [sample(_item_param(param))]
    if param.kind == "int":
        return param.min if param.min is not None else 1
    return _SAMPLE[param.kind]


def valid_params(method: Method) -> dict[str, Any]:
    """Every declared param with a value of its shape; hosts are the closed loopback port."""
    if method.name == "hello":
        return {"protocol": 1, "client": "fuzz"}
    params = {p.name: sample(p) for p in method.params}
    for server in ("imap", "smtp"):
        if isinstance(params.get(server), dict):
            params[server].update(host="127.0.0.1", port=CLOSED_PORT)
    if "test" in params:
        params["test"] = False
    return params


def targets(params: tuple[Param, ...], prefix: str = "") -> Iterator[tuple[tuple[str | int, ...], str, Param]]:
    """(keys to reach it, the field name errors use, declaration) of every param, nested ones too."""
    for p in params:
        path = f"{prefix}.{p.name}" if prefix else p.name
        yield (p.name,), path, p
        if p.kind == "map" and p.fields:
            for keys, sub, q in targets(p.fields, path):
                yield (p.name, *keys), sub, q
        if p.kind == "list" and p.item_kind:
            item = _item_param(p)
            yield (p.name, 0), f"{path}[0]", item
            if item.kind == "map" and item.fields:
                for keys, sub, q in targets(item.fields, f"{path}[0]"):
                    yield (p.name, 0, *keys), sub, q


TARGETS = [(m, keys, path, p) for m in METHODS for keys, path, p in targets(m.params)]

# One value of each wire type, and the declared kinds that accept it.
_WIRE_VALUES: dict[str, Any] = {
    "nil": None,
    "bool": True,
    "int": 7,
    "float": 1.5,
    "str": "7",
    "bin": b"7",
    "list": [],
    "map": {},
}
_ACCEPTS = {
    "str": {"str"},
    "int": {"int"},
    "bool": {"bool"},
    "map": {"map"},
    "list": {"list"},
    "bin": {"bin"},
    "str|int": {"str", "int"},
}
_WIRE_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "nil": st.none(),
    "bool": st.booleans(),
    "int": st.integers(-(2**63), 2**64 - 1),
    "float": st.floats(allow_nan=True),
    "str": st.text(max_size=20),
    "bin": st.binary(max_size=20),
    "list": st.lists(st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5), max_size=4),
    "map": st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.none(), max_size=4),
}


def wrong_types(param: Param) -> list[str]:
    accepted = _ACCEPTS[param.kind] | ({"nil"} if param.nullable else set())
    return [w for w in _WIRE_VALUES if w not in accepted]


def with_value(base: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    params: Any = msgpack.unpackb(msgpack.packb(base), raw=False)  # a deep copy
    node = params
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    assert isinstance(params, dict)
    return params


# -- 1. the decoder and router on random and mutated bytes ------------------------------------

SEEDS = [encode(Request(3, m.name, valid_params(m)))[HEADER_SIZE:] for m in METHODS]
SEEDS += [encode(Request(4, m.name, {}))[HEADER_SIZE:] for m in METHODS]
# Type bytes of msgpack: fixint, fixmap, fixarray, fixstr ends, nil, the reserved 0xc1, bools,
# bin/ext/float/int/str/array/map headers, negative fixint.
INTERESTING = bytes([0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, *range(0xC0, 0xE0), 0xE0, 0xFF])
# Byte-level mutations test the decoder (most break the document); "value" mutations decode the
# document, change one value of the tree and encode it again, so that they reach the router and
# the handlers with nearly valid requests.  A frame gets either kind, half of the time each.
BYTE_MUTATIONS = ("set", "flip", "insert", "delete", "truncate", "duplicate", "interesting", "length")
_POOL: list[Any] = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64 - 1, -(2**63), 1.5, float("nan"), "", " "]
_POOL += [
    "x" * 5000,
    "é",
    "\x00",
    "Work",
    "INBOX",
    b"",
    b"\x00" * 9,
    [],
    [None],
    {},
    {"": None},
    [[[]]],
    {"x": {"y": 1}},
]


_KEYS = ["x", "", "account", "name", "ids", "id", "limit", "project", "imap", "port", "Account", "protocol"]


def _change_value(doc: Any, rng: random.Random) -> Any:
    """One random change somewhere in a decoded document: replace a value, drop or add an item."""
    roll = rng.random()
    if isinstance(doc, dict):
        if not doc or roll < 0.2:
            doc[rng.choice(_KEYS)] = rng.choice(_POOL)
        elif roll < 0.3:
            del doc[rng.choice(list(doc))]
        elif roll < 0.95:
            key = rng.choice(list(doc))
            doc[key] = _change_value(doc[key], rng)
        else:
            return rng.choice(_POOL)
        return doc
    if isinstance(doc, list) and roll < 0.9:
        if not doc or roll < 0.2:
            doc.append(rng.choice(_POOL))
        else:
            i = rng.randrange(len(doc))
            doc[i] = _change_value(doc[i], rng)
        return doc
    return rng.choice(_POOL)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, byte in ops:
        if op == "value":
            try:
                doc = msgpack.unpackb(bytes(buf), raw=False, strict_map_key=False)
            except Exception:  # noqa: S112 (an earlier op broke the document: no tree to change)
                continue
            if isinstance(doc, list) and len(doc) == 4 and doc[0] == 0 and where % 8:  # mostly the params
                doc[3] = _change_value(doc[3], random.Random(where * 256 + byte))
            else:
                doc = _change_value(doc, random.Random(where * 256 + byte))
            buf = bytearray(msgpack.packb(doc, use_bin_type=True))
            continue
        i = where % (len(buf) + 1)
        j = i % len(buf) if buf else 0
        if op == "set" and buf:
            buf[j] = byte
        elif op == "flip" and buf:
            buf[j] ^= 1 << (byte % 8)
        elif op == "insert":
            buf[i:i] = bytes([byte])
        elif op == "delete" and buf:
            del buf[j]
        elif op == "truncate":
            del buf[i:]
        elif op == "duplicate":
            buf[i:i] = buf[i : i + byte % 32 + 1]
        elif op == "interesting" and buf:
            buf[j] = INTERESTING[byte % len(INTERESTING)]
        elif op == "length" and buf:  # a container or string header announcing a huge length
            buf[j : j + 1] = bytes([(0xDB, 0xC6, 0xDD, 0xDF)[byte % 4]]) + b"\xff\xff\xff" + bytes([byte])
    return bytes(buf)


def random_ops(rng: random.Random) -> list[tuple[str, int, int]]:
    if rng.random() < 0.5:
        return [("value", rng.randrange(2**16), rng.randrange(256)) for _ in range(rng.randint(1, 3))]
    return [(rng.choice(BYTE_MUTATIONS), rng.randrange(2**16), rng.randrange(256)) for _ in range(rng.randint(1, 4))]


_where = st.integers(0, 2**16)
MUTATION_OPS = st.lists(st.tuples(st.just("value"), _where, st.integers(0, 255)), min_size=1, max_size=3) | st.lists(
    st.tuples(st.sampled_from(BYTE_MUTATIONS), _where, st.integers(0, 255)), min_size=1, max_size=4
)


@settings(FUZZ, max_examples=10_000)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x94", b"\x94\x00", b"\x94\x00\x01"]))
def test_random_bytes(harness: Harness, data: bytes, prefix: bytes) -> None:
    """Random bytes, alone or after the start of a request: an answer or a closed connection."""
    harness.answer(prefix + data)


# Hypothesis costs about 1 ms per example of its own; for the bulk of mutated frames it only picks
# the seed of a batch (derandomized, so the same batches every run, and a failure names its seed).
MUTATED_BATCHES, MUTATED_PER_BATCH = 1200, 50


@settings(FUZZ, max_examples=MUTATED_BATCHES)
@given(rng=st.randoms(use_true_random=True))
def test_mutated_valid_frames(harness: Harness, rng: random.Random) -> None:
    """Valid requests of every method with bytes or values changed (60,000 frames): a result or a
    structured error each, or a closed connection; a tenth on a connection that has not said hello."""
    for _ in range(MUTATED_PER_BATCH):
        session = harness.greeted if rng.random() < 0.9 else harness.fresh()
        harness.answer(mutate(rng.choice(SEEDS), random_ops(rng)), session)


@settings(FUZZ, max_examples=3_000)
@given(seed=st.sampled_from(SEEDS), ops=MUTATION_OPS)
def test_mutated_valid_frames_shrinking(harness: Harness, seed: bytes, ops: list[tuple[str, int, int]]) -> None:
    """The same with hypothesis drawing every mutation, so that a failure shrinks to its smallest."""
    harness.answer(mutate(seed, ops))


def test_mutations_reach_the_router() -> None:
    """The mutation fuzzer does not only test the decoder: a good share of mutated frames decode
    into requests of known methods, which the router then validates and answers."""
    rng = random.Random(SOCKET_SEED)
    outcomes: Counter[str] = Counter()
    for _ in range(5000):
        try:
            message = parse(mutate(rng.choice(SEEDS), random_ops(rng)), max_values=MAX_REQUEST_VALUES)
        except ProtocolError:
            outcomes["protocol_error"] += 1
            continue
        known = isinstance(message, Request) and message.method in METHODS_BY_NAME
        outcomes["known method" if known else "other"] += 1
    assert outcomes["known method"] > 1500 and outcomes["protocol_error"] > 1000, outcomes


# -- 2. the router: wrong types for every param of every method -------------------------------


@pytest.mark.parametrize(("method", "keys", "path", "param"), TARGETS, ids=[f"{m.name}:{t}" for m, _, t, _ in TARGETS])
def test_wrong_type_for_every_param(
    harness: Harness, method: Method, keys: tuple[str | int, ...], path: str, param: Param
) -> None:
    """Each declared param, nested ones and list items included, given a value of each wrong wire
    type, is refused as invalid_params naming exactly that field."""
    for wrong in wrong_types(param):
        params = with_value(valid_params(method), keys, _WIRE_VALUES[wrong])
        response = harness.dispatch(harness.greeted, Request(5, method.name, params))
        assert response.error is not None, (path, wrong)
        assert response.error["code"] == ErrorCode.INVALID_PARAMS, (path, wrong, response.error)
        assert response.error["field"] == path, (wrong, response.error)


@settings(FUZZ, max_examples=6_000)
@given(target=st.sampled_from(TARGETS), data=st.data())
def test_wrong_values_for_every_param(
    harness: Harness, target: tuple[Method, tuple[str | int, ...], str, Param], data: st.DataObject
) -> None:
    """The same with random values of the wrong types, through the encoder and decoder."""
    method, keys, path, param = target
    wrong = data.draw(st.sampled_from(wrong_types(param)))
    value = data.draw(_WIRE_STRATEGIES[wrong])
    payload = encode(Request(6, method.name, with_value(valid_params(method), keys, value)))[HEADER_SIZE:]
    response, closes = harness.answer(payload)
    assert not closes and response.error is not None
    assert response.error["code"] == ErrorCode.INVALID_PARAMS and response.error["field"] == path, response.error


# -- 3. unknown methods, msgids, shapes --------------------------------------------------------

_NAMES = [m.name for m in METHODS]
_near_names = st.sampled_from(_NAMES).flatmap(
    lambda n: st.sampled_from([n.upper(), n + " ", " " + n, n + "\x00", n.replace(".", "_"), n + ".", n[:-1], "." + n])
)
_msgids = st.one_of(
    st.integers(0, MAX_MSGID),
    st.sampled_from([0, MAX_MSGID, MAX_MSGID + 1, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**31), -(2**63)]),
    st.integers(-(2**63), 2**64 - 1),
    st.none(),
    st.booleans(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
# Flat on purpose: hypothesis needs ~3 ms per recursive value; nesting is the mutators' business.
_values = _scalars | st.lists(_scalars, max_size=3) | st.dictionaries(st.text(max_size=4), _scalars, max_size=2)


def _expected_code(doc: list[Any]) -> ErrorCode | None:
    """What the daemon must answer to ``[0, msgid, method, params]``, when the shape decides it."""
    msgid, method, params = doc[1], doc[2], doc[3]
    valid_msgid = isinstance(msgid, int) and not isinstance(msgid, bool) and 0 <= msgid <= MAX_MSGID
    if not valid_msgid or not isinstance(method, str) or not (params is None or isinstance(params, dict)):
        return ErrorCode.PROTOCOL_ERROR
    if method not in METHODS_BY_NAME:
        return ErrorCode.UNKNOWN_METHOD
    return None


@settings(FUZZ, max_examples=12_000)
@given(
    msgid=_msgids,
    method=st.one_of(st.text(max_size=40), _near_names, st.sampled_from(_NAMES), st.integers(0, 2**64 - 1), st.none()),
    params=st.one_of(st.none(), st.dictionaries(st.text(max_size=12), _values, max_size=6), _values),
)
def test_unknown_methods_msgids_and_params(harness: Harness, msgid: Any, method: Any, params: Any) -> None:
    doc = [0, msgid, method, params]
    response, closes = harness.answer(msgpack.packb(doc, use_bin_type=True))
    expected = _expected_code(doc)
    if expected is ErrorCode.PROTOCOL_ERROR:
        assert closes and response.error is not None and response.error["code"] == expected
    elif expected is ErrorCode.UNKNOWN_METHOD:
        assert not closes and response.msgid == msgid
        assert response.error is not None and response.error["code"] == expected and response.error["field"] == "method"
    else:
        assert not closes and response.msgid == msgid


# -- 4. oversized strings, arrays and maps, nesting, extension types, value bombs -------------

_REQUEST_HEAD = b"\x94\x00\x07\xa6status\x81\xa1x"  # [0, 7, "status", {"x": <value>}] awaiting its value
_MESSAGES_HEAD = b"\x94\x00\x07\xadmessages.list"  # [0, 7, "messages.list", <params>]


def _str(n: int, fill: str = "x") -> bytes:
    data = (fill * n).encode()
    return b"\xdb" + struct.pack(">I", len(data)) + data


def _ext(code: int, size: int) -> bytes:
    data = bytes(size)
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        return bytes([fixed[size]]) + struct.pack(">b", code) + data
    if size < 256:
        return b"\xc7" + bytes([size]) + struct.pack(">b", code) + data
    return b"\xc8" + struct.pack(">H", size) + struct.pack(">b", code) + data


_CHEAP_KINDS = ["long method", "long key", "long bin key", "long value", "announced str", "announced array"]
_CHEAP_KINDS += ["announced map", "deep", "ext", "ext in list", "trailing bytes"]
# A document of too many values costs a walk of MAX_REQUEST_VALUES steps (about 10 ms): rarer.
HOSTILE_KINDS = [*_CHEAP_KINDS, *_CHEAP_KINDS, "too many values"]


@st.composite
def hostile_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what it is, payload) of documents built to hurt; each kind has a known answer."""
    kind = draw(st.sampled_from(HOSTILE_KINDS))
    n = draw(st.integers(4097, 2 * MiB))  # longer than any max_len but those of bodies and files
    if kind == "long method":
        return kind, b"\x94\x00\x07" + _str(n) + b"\x80"
    if kind == "long key":  # an unknown param named by a long string: the error must not echo it
        return kind, b"\x94\x00\x07\xa6status\x81" + _str(n) + b"\xc0"
    if kind == "long bin key":
        return kind, b"\x94\x00\x07\xa6status\x81" + b"\xc6" + struct.pack(">I", n) + b"\xfe" * n + b"\xc0"
    if kind == "long value":  # a declared str param far over its max_len
        return kind, _MESSAGES_HEAD + b"\x82\xa7account\xa4Work\xa6folder" + _str(n, "xé"[n % 2])
    if kind == "announced str":
        return kind, _REQUEST_HEAD + bytes([draw(st.sampled_from([0xDB, 0xC6]))]) + struct.pack(">I", 2**32 - n) + b"ab"
    if kind == "announced array":
        return kind, _REQUEST_HEAD + b"\xdd" + struct.pack(">I", draw(st.integers(MAX_CONTAINER_LEN + 1, 2**32 - 1)))
    if kind == "announced map":
        return kind, _REQUEST_HEAD + b"\xdf" + struct.pack(">I", draw(st.integers(MAX_CONTAINER_LEN + 1, 2**32 - 1)))
    if kind == "deep":
        depth = draw(st.integers(1, 1500) | st.integers(1015, 1030))
        level = draw(st.sampled_from([b"\x91", b"\x81\xa1k"]))
        # msgpack nests at most 1024 containers; the request and its params are the first two.
        return ("deep" if depth > 1022 else "nested"), _REQUEST_HEAD + level * depth + b"\xc0"
    if kind in ("ext", "ext in list"):
        code = draw(st.integers(-128, 127))
        payload = _ext(code, draw(st.sampled_from([0, 1, 2, 3, 4, 8, 12, 16, 17, 300])))
        return kind, _REQUEST_HEAD + (b"\x92\x01" + payload if kind == "ext in list" else payload)
    if kind == "too many values":  # a list of nested empty maps and small ints, just over the limit
        count = MAX_REQUEST_VALUES + draw(st.integers(1, 3000))
        return kind, _REQUEST_HEAD + b"\xdd" + struct.pack(">I", count) + draw(
            st.sampled_from([b"\x80", b"\xe0"])
        ) * count
    return kind, encode(Request(7, "status", {}))[HEADER_SIZE:] + draw(st.binary(min_size=1, max_size=8))


_EXPECTED = {
    "long method": ErrorCode.UNKNOWN_METHOD,
    "long key": ErrorCode.INVALID_PARAMS,
    "long bin key": ErrorCode.INVALID_PARAMS,
    "long value": ErrorCode.INVALID_PARAMS,
    "nested": ErrorCode.INVALID_PARAMS,  # status has no param "x"
}


@settings(FUZZ, max_examples=3_000)
@given(document=hostile_documents())
def test_hostile_documents(harness: Harness, document: tuple[str, bytes]) -> None:
    kind, payload = document
    response, closes = harness.answer(payload)
    assert response.error is not None
    expected = _EXPECTED.get(kind, ErrorCode.PROTOCOL_ERROR)
    assert response.error["code"] == expected, (kind, response.error)
    assert closes == (expected is ErrorCode.PROTOCOL_ERROR)


# The most items a container of _REQUEST_HEAD may hold: [0, 7, "status", {"x": ...}] is 6 values.
_MOST = MAX_REQUEST_VALUES - 6


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_REQUEST_HEAD + b"\xdd" + struct.pack(">I", _MOST - 1) + b"\xc0" * (_MOST - 1), "invalid_params"),
        (_REQUEST_HEAD + b"\xdd" + struct.pack(">I", _MOST) + b"\xc0" * _MOST, "protocol_error"),
        (
            _REQUEST_HEAD + b"\xdd" + struct.pack(">I", MAX_CONTAINER_LEN + 1) + b"\xc0" * (MAX_CONTAINER_LEN + 1),
            "protocol_error",
        ),
        (
            _REQUEST_HEAD
            + b"\xdf"
            + struct.pack(">I", (_MOST - 1) // 2)
            + b"".join(b"\xa5%05d\xc0" % i for i in range((_MOST - 1) // 2)),
            "invalid_params",
        ),
        (
            _REQUEST_HEAD
            + b"\xdf"
            + struct.pack(">I", MAX_CONTAINER_LEN + 1)
            + b"".join(b"\xa6%06d\xc0" % i for i in range(MAX_CONTAINER_LEN + 1)),
            "protocol_error",
        ),
    ],
    ids=["array-at-value-limit", "array-over-value-limit", "array-over-limit", "map-at-value-limit", "map-over-limit"],
)
def test_big_containers_really_sent(harness: Harness, payload: bytes, code: str) -> None:
    """Containers at the limits, sent in full: the largest a request may hold is decoded (and
    refused by the schema: status has no param x); one more value is a protocol error."""
    response, closes = harness.answer(payload)
    assert response.error is not None and response.error["name"] == code
    assert closes == (code == "protocol_error")


def test_value_bomb_is_refused_before_decoding() -> None:
    """A 32 MiB frame of one-byte values would decode into over 2 GB of Python objects: the
    count is refused first, and refusing it allocates next to nothing."""
    per_list = MAX_CONTAINER_LEN
    lists = (MAX_FRAME - 3) // (per_list + 5)
    bomb = b"\xdc" + struct.pack(">H", lists) + (b"\xdd" + struct.pack(">I", per_list) + b"\x80" * per_list) * lists
    assert len(bomb) <= MAX_FRAME
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="values"):
            parse(bomb, max_values=MAX_REQUEST_VALUES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * MiB
    # The largest legitimate request still passes: 10,000 message ids.
    ids = encode(Request(1, "messages.delete", {"ids": list(range(2**31, 2**31 + 10_000))}))[HEADER_SIZE:]
    assert isinstance(parse(ids, max_values=MAX_REQUEST_VALUES), Request)


# -- 5. params of the declared shapes with edge values: the handlers themselves ----------------

_EDGE_STR = [
    "",
    " ",
    "Work",
    "work",
    "HOME",
    "P",
    "1",
    "0",
    "-1",
    "99999999999999999999999",
    "²",
    "١٢",
    " 2 ",
    "INBOX",
    "Trash",
    "BIMoffice",
    "Projets/2026",
    "../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "/proc/self/mem",
    "/",
    "me@example.org",
    "a@b",
    "@",
    "user@gmail.com",
    "é" * 50,
    "\u202e\u0000x",
    "a\r\nb",
    "%s%n{}",
    "'; DROP TABLE accounts; --",
    "ssl",
    ",",
    "account.changed",
]
_EDGE_INT = [
    0,
    1,
    2,
    3,
    4,
    5,
    -1,
    65535,
    65536,
    1440,
    1441,
    10_000,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
]


def value_strategy(param: Param) -> st.SearchStrategy[Any]:
    """Values of the declared kind, biased to the edges (limits ± 1, references that exist)."""
    strings = st.sampled_from(_EDGE_STR) | st.text(max_size=30)
    if param.max_len <= 100_000:
        strings |= st.sampled_from(["x" * param.max_len, "x" * (param.max_len + 1)])
    ints = st.sampled_from(_EDGE_INT) | st.integers(-(2**63), 2**64 - 1) | st.integers(-3, 20)
    for bound in (param.min, param.max):
        if bound is not None:
            ints |= st.sampled_from([bound - 1, bound, bound + 1])
    kinds: dict[str, st.SearchStrategy[Any]] = {
        "str": strings,
        "int": ints,
        "bool": st.booleans(),
        "bin": st.binary(max_size=40) | st.sampled_from([b"", b"\x89PNG\r\n\x1a\n" + bytes(20), b"GIF89a"]),
        "str|int": strings | ints,
    }
    if param.choices:
        strategy: st.SearchStrategy[Any] = st.sampled_from(param.choices) | kinds[param.kind]
    elif param.kind == "map":
        fields = param.fields or ()
        strategy = st.fixed_dictionaries(
            {f.name: value_strategy(f) for f in fields if f.required},
            optional={f.name: value_strategy(f) for f in fields if not f.required},
        )
    elif param.kind == "list":
        item = value_strategy(_item_param(param)) if param.item_kind else st.none()
        strategy = st.lists(item, max_size=4)
    else:
        strategy = kinds[param.kind]
    return strategy | st.none() if param.nullable else strategy


def params_strategy(method: Method) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {p.name: value_strategy(p) for p in method.params if p.required},
        optional={p.name: value_strategy(p) for p in method.params if not p.required},
    )


# account.test always connects; fuzzing it tests the loopback-only loop more than the daemon.
SHAPED = [m for m in METHODS if m.name != "account.test"]


@settings(FUZZ, max_examples=3_000)
@given(method=st.sampled_from(SHAPED), data=st.data())
def test_declared_shapes_with_edge_values(harness: Harness, method: Method, data: st.DataObject) -> None:
    """Params that pass (or just fail) validation reach the handlers: every outcome is a result or
    a structured error, never an internal one."""
    params = data.draw(params_strategy(method))
    harness.ensure_accounts()
    session = harness.greeted if method.name != "hello" else harness.fresh()
    harness.dispatch(session, Request(8, method.name, params))


def random_value(param: Param, rng: random.Random) -> Any:
    """What ``value_strategy`` draws, from a plain Random: 30 times cheaper than hypothesis."""
    if param.nullable and rng.random() < 0.1:
        return None
    if param.choices and rng.random() < 0.5:
        return rng.choice(param.choices)
    kind = rng.choice(["str", "int"]) if param.kind == "str|int" else param.kind
    if kind == "map":
        fields = param.fields or ()
        return {f.name: random_value(f, rng) for f in fields if f.required or rng.random() < 0.3}
    if kind == "list":
        return [random_value(_item_param(param), rng) for _ in range(rng.randrange(5))] if param.item_kind else []
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "bin":
        return rng.randbytes(rng.randrange(40))
    if kind == "int":
        bounds = [b + d for b in (param.min, param.max) if b is not None for d in (-1, 0, 1)]
        return rng.choice([rng.choice(_EDGE_INT), rng.randint(-3, 20), rng.randint(-(2**63), 2**64 - 1), *bounds])
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(_EDGE_STR)
    if roll < 0.7 and param.max_len <= 100_000:
        return "x" * (param.max_len + rng.randint(0, 1))
    return "".join(chr(rng.choice([rng.randrange(32, 127), _wire_char(rng)])) for _ in range(rng.randrange(12)))


def _wire_char(rng: random.Random) -> int:
    """Any code point UTF-8 can carry (surrogates cannot come off the wire)."""
    point = rng.randrange(0x10FFFF)
    return point if not 0xD800 <= point <= 0xDFFF else 0xFFFD


SHAPED_BATCHES, SHAPED_PER_BATCH = 800, 25


@settings(FUZZ, max_examples=SHAPED_BATCHES)
@given(rng=st.randoms(use_true_random=True))
def test_declared_shapes_in_bulk(harness: Harness, rng: random.Random) -> None:
    """20,000 more requests of the declared shapes, drawn from a seeded Random."""
    harness.ensure_accounts()
    for _ in range(SHAPED_PER_BATCH):
        method = rng.choice(SHAPED)
        params = {p.name: random_value(p, rng) for p in method.params if p.required or rng.random() < 0.4}
        session = harness.greeted if method.name != "hello" else harness.fresh()
        harness.dispatch(session, Request(8, method.name, params))


def test_daemon_survived_the_sans_io_fuzzing(harness: Harness) -> None:
    assert not harness.running.task.done()
    response = harness.dispatch(harness.greeted, Request(10, "status", {}))
    assert response.error is None and response.result["pid"] == os.getpid()


# -- 6. the real socket: fuzzed connections and a well-behaved client at the same time ---------


def socket_frames(count: int) -> Iterator[bytes]:
    """Deterministic frame bodies for the socket: mutated requests, random bytes, requests of every
    method with an unknown param."""
    rng = random.Random(SOCKET_SEED)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.75:
            yield mutate(rng.choice(SEEDS), random_ops(rng))
        elif roll < 0.9:
            yield rng.randbytes(rng.randrange(64))
        else:
            yield msgpack.packb([0, rng.randrange(MAX_MSGID + 1), rng.choice(_NAMES), {"x" * rng.randrange(1, 9): 1}])


@dataclass
class Bystander:
    latencies: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, path: Path) -> None:
        async with await Client.connect(path, client_name="bystander") as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                status = await asyncio.wait_for(client.call("status"), DISPATCH_TIMEOUT)
                accounts = await asyncio.wait_for(client.call("account.list"), DISPATCH_TIMEOUT)
                assert status["pid"] == os.getpid() and isinstance(accounts, list)
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.005)


async def _fuzz_worker(path: Path, frames: Iterator[bytes], counts: Counter[str]) -> None:
    raw: RawConnection | None = None
    try:
        for payload in frames:
            if raw is None:
                raw = await RawConnection.open(path, hello=True)
            try:
                message: Any = parse(payload, max_values=MAX_REQUEST_VALUES)
            except ProtocolError:
                message = None
            await raw.send_frame(payload)
            response = await raw.response(DISPATCH_TIMEOUT)
            if isinstance(message, Request):
                check_response(response, message.msgid)
                counts["answered"] += 1
                continue
            # Not a request: one protocol error, then that connection (only) is closed.
            assert response.error is not None and response.error["code"] == ErrorCode.PROTOCOL_ERROR
            assert await raw.closed_by_daemon()
            await raw.aclose()
            raw = None
            counts["closed"] += 1
    finally:
        if raw is not None:
            await raw.aclose()


def test_fuzzed_socket_while_a_client_is_served(harness: Harness) -> None:
    """3,000 mutated frames over 4 connections at once: each answered with a result or a
    structured error, or only its own connection closed; the bystander's answers keep coming."""

    async def scenario() -> tuple[Counter[str], list[float]]:
        path = harness.running.socket_path
        bystander = Bystander()
        watcher = asyncio.create_task(bystander.run(path))
        counts: Counter[str] = Counter()
        frames = socket_frames(SOCKET_FRAMES)  # shared: each worker takes the next one
        try:
            await asyncio.gather(*(_fuzz_worker(path, frames, counts) for _ in range(4)))
        finally:
            bystander.stop.set()
            await watcher
        return counts, bystander.latencies

    counts, latencies = harness.runner.run(scenario())
    assert counts["answered"] + counts["closed"] == SOCKET_FRAMES
    assert counts["answered"] > 500 and counts["closed"] > 500, counts
    assert len(latencies) > 20 and max(latencies) < BYSTANDER_MAX_SECONDS, (len(latencies), max(latencies))
    assert not harness.running.task.done()


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (struct.pack(">I", 2**31), ErrorCode.FRAME_TOO_LARGE),  # 2 GB, or -2**31 as a signed int
        (b"\xff\xff\xff\xff", ErrorCode.FRAME_TOO_LARGE),  # 4 GB, or -1 as a signed int
        (struct.pack(">I", MAX_FRAME + 1), ErrorCode.FRAME_TOO_LARGE),
        (struct.pack(">I", 0), ErrorCode.PROTOCOL_ERROR),  # an empty document
    ],
    ids=["2GB", "minus-one", "limit+1", "empty"],
)
def test_hostile_headers_close_only_their_connection(harness: Harness, header: bytes, code: ErrorCode) -> None:
    async def scenario() -> None:
        path = harness.running.socket_path
        async with await Client.connect(path) as bystander:
            raw = await RawConnection.open(path, hello=True)
            await raw.send_frame(b"", header=header)
            response = await raw.response(DISPATCH_TIMEOUT)
            assert response.msgid is None and response.error is not None and response.error["code"] == code
            assert await raw.closed_by_daemon()
            await raw.aclose()
            assert (await bystander.call("status"))["pid"] == os.getpid()

    harness.runner.run(scenario())


def test_unfinished_frame_times_out_and_closes(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header promising more than is ever sent (slowloris): answered and closed once the body
    timeout passes; other clients are served meanwhile."""
    monkeypatch.setattr(connection, "FRAME_BODY_TIMEOUT", 0.5)

    async def scenario() -> None:
        path = harness.running.socket_path
        async with await Client.connect(path) as bystander:
            raw = await RawConnection.open(path, hello=True)
            await raw.send_frame(b"\x94\x00", header=struct.pack(">I", 1000))
            assert (await bystander.call("status"))["pid"] == os.getpid()
            response = await raw.response(timeout=10)
            assert response.error is not None and response.error["code"] == ErrorCode.PROTOCOL_ERROR
            assert await raw.closed_by_daemon()
            await raw.aclose()

    harness.runner.run(scenario())


# -- 7. memory of a real daemon process ---------------------------------------------------------


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` (bytes): the kernel's high-water mark."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def _exchange(path: Path, payload: bytes, *, header: bytes | None = None, hello: bool = True) -> Response:
    raw = await RawConnection.open(path, hello=hello)
    try:
        await raw.send_frame(payload, header=header)
        return await raw.response(DISPATCH_TIMEOUT)
    finally:
        await raw.aclose()


async def test_memory_stays_bounded_under_hostile_frames(short_dir: Path, tmp_path: Path) -> None:
    """VmHWM of a real bimmaild: headers announcing 2 GB cost nothing; a half-sent 32 MiB frame
    costs what was sent; a 32 MiB frame of tiny values (2+ GB once decoded) costs no more than an
    honest 32 MiB frame."""
    path = short_dir / "s.sock"
    process = await spawn_daemon(path, tmp_path / "data")
    try:
        start = _vm_hwm(process.pid)
        for hello in (False, True):
            response = await _exchange(path, b"", header=struct.pack(">I", 2**31), hello=hello)
            assert response.error is not None and response.error["code"] == ErrorCode.FRAME_TOO_LARGE
        assert _vm_hwm(process.pid) - start < 8 * MiB

        raw = await RawConnection.open(path, hello=True)
        await raw.send_frame(b"\x94" + bytes(MiB), header=struct.pack(">I", MAX_FRAME))  # then leaves
        await raw.aclose()
        await asyncio.sleep(0.2)
        assert _vm_hwm(process.pid) - start < 16 * MiB

        honest = encode(Request(1, "status", {"x": b"\x00" * (MAX_FRAME - 64)}))[HEADER_SIZE:]
        response = await _exchange(path, honest)
        assert response.error is not None and response.error["code"] == ErrorCode.INVALID_PARAMS
        after_honest = _vm_hwm(process.pid)

        per_list = MAX_CONTAINER_LEN
        lists = (MAX_FRAME - 3) // (per_list + 5)
        bomb = b"\xdc" + struct.pack(">H", lists) + (b"\xdd" + struct.pack(">I", per_list) + b"\xe0" * per_list) * lists
        response = await _exchange(path, bomb)
        assert response.error is not None and response.error["code"] == ErrorCode.PROTOCOL_ERROR
        after_bomb = _vm_hwm(process.pid)
        assert after_bomb - after_honest < 16 * MiB, (after_honest - start, after_bomb - after_honest)
        assert after_bomb - start < 256 * MiB, after_bomb - start

        async with await Client.connect(path) as client:
            assert (await client.call("status"))["pid"] == process.pid
    finally:
        process.terminate()
        await process.wait()
