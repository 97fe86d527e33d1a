"""Errors of the IMAP adapter.  Any of them means: this connection is unusable; reconnect."""

from __future__ import annotations


class ImapError(Exception):
    """Base of the adapter's errors."""


class ImapTimeout(ImapError):
    """The server did not answer in time (``stage`` says which)."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"no answer from the server during {stage}")
        self.stage = stage


class ImapConnectionLost(ImapError):
    """The server closed the connection (or it broke) while we waited."""


class ImapProtocolError(ImapError):
    """The server sent something that is not IMAP (wrong port or protocol), or that we cannot parse."""


class StartTlsUnavailable(ImapError):
    """STARTTLS was required but the server does not offer it."""


class LoginDisabled(ImapError):
    """The server refuses clear-text login on this connection (LOGINDISABLED)."""


class CommandFailed(ImapError):
    """A command was answered NO or BAD; ``text`` is the server's own reply."""

    def __init__(self, command: str, result: str, text: str) -> None:
        super().__init__(f"{command} failed: {result} {text}")
        self.command = command
        self.result = result
        self.text = text


class AuthenticationFailed(CommandFailed):
    """Login refused by the server."""

    @property
    def unavailable(self) -> bool:
        """RFC 5530's UNAVAILABLE: the login could not be checked now (Dovecot says so when its
        passdb, or its OAuth2 introspection endpoint, cannot be reached) — temporary, not a
        wrong password or token."""
        return "[UNAVAILABLE]" in self.text.upper()
