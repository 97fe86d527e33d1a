"""Declarative parameter shapes and their validation.

Each protocol method declares its params as a tuple of :class:`Param`.  The
router validates every request against that declaration before a handler
runs, so handlers see only well-typed values, and every shape error names the
offending field with a dotted path (``imap.port``).  The same declarations
generate the method reference in ``docs/PROTOCOL.md``.

Validation checks shape (types, lengths, ranges, choices); meaning (is this a
valid address, is this name taken) is the daemon's business.  Values of
``secret`` params never appear in error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bimmaild.protocol.errors import InvalidParams

_MISSING: Any = object()

# Wire types a Param can declare, mapped to the Python types msgpack decodes to.
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "map": (dict,),
    "list": (list,),
    "bin": (bytes,),
    "str|int": (str, int),
}

DEFAULT_MAX_STR = 4096
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Characters of an unknown key quoted in its error.
MAX_KEY_SHOWN = 100


@dataclass(frozen=True)
class Param:
    """One parameter of a method.  ``fields`` describes a nested map."""

    name: str
    kind: str
    doc: str
    required: bool = False
    nullable: bool = False
    default: Any = _MISSING
    choices: tuple[Any, ...] | None = None
    min: int | None = None
    max: int | None = None
    max_len: int = DEFAULT_MAX_STR
    item_kind: str | None = None
    max_items: int = 1000
    fields: tuple[Param, ...] | None = None  # of a map, or of each map of a list of maps
    secret: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _key_name(key: object) -> str:
    """An unknown key as an error names it, cut short: a key can be megabytes long, and the
    error would send it back twice (message and field), past the frame limit."""
    if isinstance(key, bytes):
        key = key[:MAX_KEY_SHOWN]
    text = key if isinstance(key, str) else repr(key)
    return text if len(text) <= MAX_KEY_SHOWN else text[:MAX_KEY_SHOWN] + "…"


def _type_matches(kind: str, value: object) -> bool:
    if isinstance(value, bool) and kind not in ("bool",):
        return False  # bool is an int in Python, never on our wire
    return isinstance(value, _KINDS[kind])


def _shown(param: Param, value: object) -> str:
    return "" if param.secret else f" (got {value!r:.60})"


def _check_value(param: Param, value: Any, path: str) -> Any:
    if value is None:
        if param.nullable:
            return None
        raise InvalidParams(f"{path} must not be nil", field=path)
    if not _type_matches(param.kind, value):
        raise InvalidParams(f"{path} must be of type {param.kind}, not {type(value).__name__}", field=path)
    if isinstance(value, str):
        _check_str(param, value, path)
    elif isinstance(value, bytes) and len(value) > param.max_len:
        raise InvalidParams(f"{path} is larger than {param.max_len} bytes", field=path)
    elif isinstance(value, int) and not isinstance(value, bool):
        _check_int(param, value, path)
    if param.choices is not None and value not in param.choices:
        allowed = ", ".join(repr(c) for c in param.choices)
        raise InvalidParams(f"{path} must be one of {allowed}{_shown(param, value)}", field=path)
    if isinstance(value, dict) and param.fields is not None:
        return validate(value, param.fields, path)
    if isinstance(value, list):
        return _check_list(param, value, path)
    return value


def _check_str(param: Param, value: str, path: str) -> None:
    if len(value) > param.max_len:
        raise InvalidParams(f"{path} is longer than {param.max_len} characters", field=path)
    if "\x00" in value:
        raise InvalidParams(f"{path} must not contain NUL characters", field=path)


def _check_int(param: Param, value: int, path: str) -> None:
    # msgpack carries integers up to 2**64-1, SQLite (ids, counts, limits) signed 64-bit ones:
    # a larger id must be a bad parameter, not an OverflowError deep in a handler.
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidParams(f"{path} must be a signed 64-bit integer{_shown(param, value)}", field=path)
    if param.min is not None and value < param.min:
        raise InvalidParams(f"{path} must be at least {param.min}{_shown(param, value)}", field=path)
    if param.max is not None and value > param.max:
        raise InvalidParams(f"{path} must be at most {param.max}{_shown(param, value)}", field=path)


def _check_list(param: Param, value: list[Any], path: str) -> list[Any]:
    if len(value) > param.max_items:
        raise InvalidParams(f"{path} has more than {param.max_items} items", field=path)
    if param.item_kind is None:
        return value
    fields = param.fields if param.item_kind == "map" else None
    item = Param(name="", kind=param.item_kind, doc="", max_len=param.max_len, secret=param.secret, fields=fields)
    return [_check_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]


def validate(params: object, spec: tuple[Param, ...], prefix: str = "") -> dict[str, Any]:
    """Return the params checked against ``spec``, with declared defaults filled in.

    Unknown keys are refused: a misspelt option must not be silently ignored.
    """
    if not isinstance(params, Mapping):
        raise InvalidParams(f"{prefix or 'params'} must be a map", field=prefix or None)
    known = {p.name for p in spec}
    for key in params:
        if key not in known:
            name = _key_name(key)
            raise InvalidParams(f"unknown parameter {_join(prefix, name)!r}", field=_join(prefix, name))
    out: dict[str, Any] = {}
    for param in spec:
        path = _join(prefix, param.name)
        if param.name in params:
            out[param.name] = _check_value(param, params[param.name], path)
        elif param.required:
            raise InvalidParams(f"missing required parameter {path!r}", field=path)
        elif param.has_default:
            out[param.name] = param.default
    return out
