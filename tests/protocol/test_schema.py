"""Parameter validation: every shape error names its field; secrets are never echoed."""

from __future__ import annotations

from typing import Any

import pytest

from bimmaild.protocol.errors import InvalidParams
from bimmaild.protocol.methods import METHODS_BY_NAME
from bimmaild.protocol.schema import Param, validate

ADD = METHODS_BY_NAME["account.add"].params


def _add_params(**extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": "Work",
        "email": "me@example.org",
        "password": "pw",
        "imap": {"host": "imap.example.org"},
        "smtp": {"host": "smtp.example.org"},
    }
    params.update(extra)
    return params


def test_defaults_filled_for_add() -> None:
    out = validate(_add_params(), ADD)
    # Server settings get no schema default: a provider preset may fill them first.
    assert out["smtp"] == {"host": "smtp.example.org"}
    assert out["test"] is True
    assert out["trash_folder"] == "BIMoffice"
    assert out["separator"] == ","
    assert out["auto_fetch"] is True
    assert out["enabled"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"email": "me@example.org"}, "name"),
        (_add_params(imap={"host": 993}), "imap.host"),
        (_add_params(imap={"host": "h", "port": "993"}), "imap.port"),
        (_add_params(imap={"host": "h", "port": 0}), "imap.port"),
        (_add_params(imap={"host": "h", "port": 65536}), "imap.port"),
        (_add_params(imap={"host": "h", "port": True}), "imap.port"),
        (_add_params(smtp={"host": "h", "security": "tls"}), "smtp.security"),
        (_add_params(smtp={"host": "h", "auth": 1}), "smtp.auth"),
        (_add_params(separator="|"), "separator"),
        (_add_params(auto_fetch="yes"), "auto_fetch"),
        (_add_params(name=None), "name"),
        (_add_params(name="x" * 101), "name"),
        (_add_params(imap="imap.example.org"), "imap"),
        (_add_params(colour="blue"), "colour"),
        (_add_params(imap={"host": "h", "prot": 1}), "imap.prot"),
        (_add_params(name="a\x00b"), "name"),
    ],
)
def test_shape_errors_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParams) as err:
        validate(params, ADD)
    assert err.value.field == field
    assert field in err.value.message


def test_secret_values_are_never_echoed() -> None:
    spec = (Param("password", "str", "", choices=("a",), secret=True),)
    with pytest.raises(InvalidParams) as err:
        validate({"password": "hunter2-secret"}, spec)
    assert "hunter2" not in str(err.value.to_wire())


def test_list_items_are_checked_with_index() -> None:
    spec = METHODS_BY_NAME["subscribe"].params
    with pytest.raises(InvalidParams) as err:
        validate({"topics": ["account.changed", 5]}, spec)
    assert err.value.field == "topics[1]"


def test_params_must_be_a_map() -> None:
    with pytest.raises(InvalidParams):
        validate(["a"], ADD)


def test_modify_has_no_defaults() -> None:
    out = validate({"account": "Work", "smtp": {"port": 465}}, METHODS_BY_NAME["account.modify"].params)
    assert out == {"account": "Work", "smtp": {"port": 465}}


def test_lists_of_maps_and_bytes_are_checked_field_by_field() -> None:
    """Attachments and signature images: a list of maps, each with a bin field and a size limit."""
    spec = METHODS_BY_NAME["send"].params
    ok = validate({"text": "x", "attachments": [{"filename": "a.pdf", "data": b"%PDF"}]}, spec)
    assert ok["attachments"] == [{"filename": "a.pdf", "data": b"%PDF"}]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"text": "x", "attachments": [{"filename": "a", "data": b""}, {"filename": "b", "data": "text"}]},
         "attachments[1].data"),
        ({"text": "x", "attachments": [{"data": b""}]}, "attachments[0].filename"),
        ({"text": "x", "attachments": [{"filename": "a", "data": b"", "path": "/etc/passwd"}]},
         "attachments[0].path"),
        ({"text": "x", "attachments": ["a.pdf"]}, "attachments[0]"),
    ]  # fmt: skip
    for params, field in bad:
        with pytest.raises(InvalidParams) as err:
            validate(params, spec)
        assert err.value.field == field
    small = (Param("data", "bin", "", max_len=4),)
    with pytest.raises(InvalidParams) as err:
        validate({"data": b"12345"}, small)
    assert err.value.field == "data" and "larger than 4 bytes" in err.value.message


def test_integers_are_signed_64_bit() -> None:
    """msgpack carries up to 2**64-1, SQLite signed 64-bit: a bigger id is a bad param, not a crash."""
    ids = METHODS_BY_NAME["messages.delete"].params
    assert validate({"ids": [2**63 - 1, -(2**63)]}, ids)["ids"] == [2**63 - 1, -(2**63)]
    for bad in (2**63, 2**64 - 1, -(2**63) - 1):
        with pytest.raises(InvalidParams) as err:
            validate({"ids": [1, bad]}, ids)
        assert err.value.field == "ids[1]"


def test_an_unknown_key_is_quoted_cut_short() -> None:
    """A key can be a frame long; its error must not send it back (twice) past the frame limit."""
    for key in ("k" * 5_000_000, b"\xfe" * 5_000_000):
        with pytest.raises(InvalidParams) as err:
            validate({key: 1}, ADD)
        assert len(err.value.message) < 500 and err.value.field is not None and len(err.value.field) < 200
