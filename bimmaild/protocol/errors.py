"""Stable error codes and the error object of the control protocol.

The daemon raises these exceptions; the router turns them into the wire object
``{code, name, message, field, data}``; the client turns the wire object back
into the same exception class.  Both sides share this one table, so a script
can branch on ``code`` (or on the exception class) instead of parsing text.

Codes are grouped by what the caller should do about them:

====  ======================  ==================================================
code  name                    retry
====  ======================  ==================================================
100   protocol_error          never: the client sent something that is not a
                              well-formed message; fix the client
101   frame_too_large         never
102   handshake_required      now, after ``hello``
103   unsupported_protocol    never: upgrade client or daemon
104   already_greeted         never
105   unknown_method          never
200   invalid_params          never: fix the value named by ``field``
300   not_found               never
400   conflict                never: the value named by ``field`` is taken
500   permission_denied       never
600   confirmation_required   now, with ``confirm: true``
700   server_unreachable      later
701   tls_failure             never, until the TLS settings change
702   auth_failed             never, until the credentials change
703   server_error            later
800   busy                    later
801   storage_error           later (disk full, read-only data dir …)
802   secrets_unavailable     later (keyring locked or gone)
900   internal                later; a bug, reported in the daemon log
====  ======================  ==================================================

Codes are never reused or renumbered; new ones are only added.
This module imports only the standard library.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ErrorCode(IntEnum):
    PROTOCOL_ERROR = 100
    FRAME_TOO_LARGE = 101
    HANDSHAKE_REQUIRED = 102
    UNSUPPORTED_PROTOCOL = 103
    ALREADY_GREETED = 104
    UNKNOWN_METHOD = 105
    INVALID_PARAMS = 200
    NOT_FOUND = 300
    CONFLICT = 400
    PERMISSION_DENIED = 500
    CONFIRMATION_REQUIRED = 600
    SERVER_UNREACHABLE = 700
    TLS_FAILURE = 701
    AUTH_FAILED = 702
    SERVER_ERROR = 703
    BUSY = 800
    STORAGE_ERROR = 801
    SECRETS_UNAVAILABLE = 802
    INTERNAL = 900

    @property
    def wire_name(self) -> str:
        return self.name.lower()


class Retry:
    """What a caller should do after an error (httpx / isync style)."""

    NOW = "now"
    LATER = "later"
    NEVER = "never"


_RETRY = {
    ErrorCode.HANDSHAKE_REQUIRED: Retry.NOW,
    ErrorCode.CONFIRMATION_REQUIRED: Retry.NOW,
    ErrorCode.SERVER_UNREACHABLE: Retry.LATER,
    ErrorCode.SERVER_ERROR: Retry.LATER,
    ErrorCode.BUSY: Retry.LATER,
    ErrorCode.STORAGE_ERROR: Retry.LATER,
    ErrorCode.SECRETS_UNAVAILABLE: Retry.LATER,
    ErrorCode.INTERNAL: Retry.LATER,
}


class BimmailError(Exception):
    """An error that crosses the control socket.

    ``field`` names the offending parameter with dots for nesting
    (``imap.port``), so front-ends can put the message next to the right input.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.data: dict[str, Any] = dict(data or {})

    @property
    def retry(self) -> str:
        return _RETRY.get(self.code, Retry.NEVER)

    def to_wire(self) -> dict[str, Any]:
        return {
            "code": int(self.code),
            "name": self.code.wire_name,
            "message": self.message,
            "field": self.field,
            "data": self.data,
        }

    def __str__(self) -> str:
        return f"{self.message} [{self.field}]" if self.field else self.message


class ProtocolError(BimmailError):
    code = ErrorCode.PROTOCOL_ERROR


class FrameTooLarge(BimmailError):
    code = ErrorCode.FRAME_TOO_LARGE


class HandshakeRequired(BimmailError):
    code = ErrorCode.HANDSHAKE_REQUIRED


class UnsupportedProtocol(BimmailError):
    code = ErrorCode.UNSUPPORTED_PROTOCOL


class AlreadyGreeted(BimmailError):
    code = ErrorCode.ALREADY_GREETED


class UnknownMethod(BimmailError):
    code = ErrorCode.UNKNOWN_METHOD


class InvalidParams(BimmailError):
    code = ErrorCode.INVALID_PARAMS


class NotFound(BimmailError):
    code = ErrorCode.NOT_FOUND


class Conflict(BimmailError):
    code = ErrorCode.CONFLICT


class PermissionDenied(BimmailError):
    code = ErrorCode.PERMISSION_DENIED


class ConfirmationRequired(BimmailError):
    code = ErrorCode.CONFIRMATION_REQUIRED


class ServerUnreachable(BimmailError):
    code = ErrorCode.SERVER_UNREACHABLE


class TlsFailure(BimmailError):
    code = ErrorCode.TLS_FAILURE


class AuthFailed(BimmailError):
    code = ErrorCode.AUTH_FAILED


class ServerError(BimmailError):
    code = ErrorCode.SERVER_ERROR


class Busy(BimmailError):
    code = ErrorCode.BUSY


class StorageError(BimmailError):
    code = ErrorCode.STORAGE_ERROR


class SecretsUnavailable(BimmailError):
    code = ErrorCode.SECRETS_UNAVAILABLE


class InternalError(BimmailError):
    code = ErrorCode.INTERNAL


ERROR_CLASSES: dict[ErrorCode, type[BimmailError]] = {
    cls.code: cls
    for cls in (
        ProtocolError,
        FrameTooLarge,
        HandshakeRequired,
        UnsupportedProtocol,
        AlreadyGreeted,
        UnknownMethod,
        InvalidParams,
        NotFound,
        Conflict,
        PermissionDenied,
        ConfirmationRequired,
        ServerUnreachable,
        TlsFailure,
        AuthFailed,
        ServerError,
        Busy,
        StorageError,
        SecretsUnavailable,
        InternalError,
    )
}


def error_from_wire(obj: object) -> BimmailError:
    """Rebuild the exception a daemon sent; tolerate codes newer than this client."""
    if not isinstance(obj, dict):
        return ProtocolError(f"malformed error object from daemon: {obj!r:.200}")
    raw_code = obj.get("code")
    message = obj.get("message")
    field = obj.get("field")
    data = obj.get("data")
    text = message if isinstance(message, str) else "error without message"
    try:
        if not isinstance(raw_code, int):
            raise ValueError(raw_code)
        code = ErrorCode(raw_code)
    except ValueError:
        err: BimmailError = BimmailError(text)
        err.data = {"unknown_code": raw_code, "name": obj.get("name")}
        return err
    return ERROR_CLASSES[code](
        text,
        field=field if isinstance(field, str) else None,
        data=data if isinstance(data, dict) else None,
    )
