"""Handing a message to the account's SMTP server, one RCPT TO per recipient (R-D1, R-B1, R-B3).

Transport security is the account's, always explicit: ``use_tls`` for ssl,
``start_tls=True`` for starttls (aiosmtplib's default is opportunistic and can
be stripped by an attacker), certificates verified (plus the account's CA
file).  Authentication uses one mechanism (PLAIN, else LOGIN): aiosmtplib's
``login`` tries each in turn and a wrong password would count several times.

The outcome is per recipient.  A failure says whether it is temporary
(4xx, unreachable, timeout: try again later) or permanent (5xx, refused
login, certificate: the user must act), so the outbox knows what to do.
A connection lost or silent once DATA has begun is neither: the server may
have taken the message before its answer was lost (RFC 5321 §6.1), and
sending again could deliver it twice — ``SubmissionUncertain``.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiosmtplib.email import flatten_message

from bimmaild import tls
from bimmaild.accounts.credentials import Credentials
from bimmaild.accounts.model import Account
from bimmaild.accounts.secrets import Secret
from bimmaild.oauth.tokens import TokenProblem, reauth_hint
from bimmaild.send.recipients import envelope_form

EHLO_NAME = "[127.0.0.1]"
# How aiosmtplib 5.x says that the server offers no STARTTLS; only the wording of our error
# depends on it: the refusal is aiosmtplib's, whatever it says.
NO_STARTTLS = "STARTTLS extension not supported"


class SubmissionFailed(Exception):
    """Nothing was sent; ``temporary`` says whether trying again later can work."""

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        code: int | None = None,
        refused: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.code = code
        self.refused = refused or {}  # every recipient refused: each one's answer


class SubmissionUncertain(Exception):
    """The connection failed after DATA began: whether the server took the message is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _SMTP(aiosmtplib.SMTP):
    """Remembers whether DATA was begun: a failure after that point has an unknown outcome."""

    data_begun = False

    async def data(self, *args: Any, **kwargs: Any) -> Any:
        self.data_begun = True
        return await super().data(*args, **kwargs)


@dataclass
class Submission:
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # address -> (code, server's text)
    reply: str = ""

    @property
    def temporary(self) -> list[str]:
        return [a for a, (code, _) in self.refused.items() if 400 <= code < 500]


def _client(account: Account, timeout: float) -> _SMTP:
    context = tls.client_context(account.tls_ca_file) if account.smtp_security != "none" else None
    return _SMTP(
        hostname=account.smtp_host,
        port=account.smtp_port,
        use_tls=account.smtp_security == "ssl",
        start_tls=account.smtp_security == "starttls",
        tls_context=context,
        timeout=timeout,
        local_hostname=EHLO_NAME,
    )


async def submit(
    account: Account, credentials: Credentials, message: EmailMessage, recipients: list[str], timeout: float
) -> Submission:
    """Send ``message`` (its Bcc header already removed) to ``recipients``."""
    client = _client(account, timeout)
    try:
        await _connect(client, account, credentials)
        sender = envelope_form(account.email)
        data, options = await _flatten(client, sender, recipients, message)
        try:
            errors, reply = await client.sendmail(sender, recipients, data, mail_options=options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = {r.recipient: (r.code, r.message) for r in exc.recipients}
            temporary = all(400 <= code < 500 for code, _ in refused.values())
            raise SubmissionFailed(
                "every recipient was refused: " + "; ".join(f"{a}: {c} {m}" for a, (c, m) in refused.items()),
                temporary=temporary,
                refused=refused,
            ) from None
        except aiosmtplib.SMTPResponseException as exc:  # sender refused, DATA refused …
            raise SubmissionFailed(
                f"{exc.code} {exc.message}", temporary=400 <= exc.code < 500, code=exc.code
            ) from None
        refused = {addr: (r.code, r.message) for addr, r in errors.items()}
        return Submission([r for r in recipients if r not in refused], refused, reply)
    except (
        aiosmtplib.SMTPConnectError,
        aiosmtplib.SMTPTimeoutError,
        aiosmtplib.SMTPServerDisconnected,
        OSError,
    ) as exc:
        if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            raise SubmissionFailed(f"the SMTP server's certificate is refused: {exc}", temporary=False) from None
        if client.data_begun:
            raise SubmissionUncertain(
                f"the connection to {account.smtp_host}:{account.smtp_port} failed while the message was being "
                f"transmitted ({exc or exc.__class__.__name__}): the server may have taken it"
            ) from None
        raise SubmissionFailed(f"cannot reach {account.smtp_host}:{account.smtp_port}: {exc}", temporary=True) from None
    except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS required but not offered: never downgraded
        if account.smtp_security == "starttls" and NO_STARTTLS in str(exc):
            # aiosmtplib refused (it closed the connection and forgot the EHLO answer); its words do
            # not say that nothing was sent, nor that the server may not be the one stripping it.
            raise SubmissionFailed(
                f"{account.smtp_host}:{account.smtp_port} does not offer STARTTLS, which this account requires: "
                "nothing was sent without TLS (if the server does offer it, something on the network removed it)",
                temporary=False,
            ) from None
        raise SubmissionFailed(str(exc), temporary=False) from None
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def _flatten(
    client: aiosmtplib.SMTP, sender: str, recipients: list[str], message: EmailMessage
) -> tuple[bytes, list[str]]:
    """The bytes to transmit and the MAIL options, as ``send_message`` would make them — but
    flattened in a thread: a message with big attachments takes a while, and the event loop
    serves every client and every sync meanwhile.  Bcc headers are left out."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    options = []
    utf8 = not all(address.isascii() for address in (sender, *recipients))
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise SubmissionFailed("a non-ASCII address needs SMTPUTF8, which the server lacks", temporary=False)
        options.append("SMTPUTF8")
    eight_bit = client.supports_extension("8BITMIME")
    if eight_bit:
        options.append("BODY=8BITMIME")
    data = await asyncio.to_thread(flatten_message, message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
    return data, options


async def _connect(client: aiosmtplib.SMTP, account: Account, credentials: Credentials) -> None:
    await client.connect()
    if not account.smtp_auth:
        return
    password = await _secret(credentials, account, renew=False)
    if password is None:
        raise SubmissionFailed("no SMTP password is stored for this account", temporary=False)
    await client.ehlo()
    mechanisms = client.server_auth_methods
    if not mechanisms:
        raise SubmissionFailed("the SMTP server offers no authentication on this connection", temporary=False)
    if account.oauth:
        await _login_oauth(client, account, credentials, password, mechanisms)
        return
    method = client.auth_plain if "plain" in mechanisms else client.auth_login
    try:
        await method(account.smtp_user, password.reveal())
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SubmissionFailed(
            f"SMTP login refused: {exc.code} {exc.message}", temporary=_auth_temporary(exc), code=exc.code
        ) from None


async def _secret(credentials: Credentials, account: Account, *, renew: bool) -> Secret | None:
    try:
        return await credentials.secret(account, "smtp", renew=renew)
    except TokenProblem as exc:  # the token endpoint down is temporary; a revoked grant is not
        raise SubmissionFailed(exc.message, temporary=not exc.attention) from None


async def _login_oauth(
    client: aiosmtplib.SMTP, account: Account, credentials: Credentials, token: Secret, mechanisms: list[str]
) -> None:
    """AUTH XOAUTH2; a refused token gets one renewed token, then the refusal stands."""
    if "xoauth2" not in mechanisms:
        raise SubmissionFailed("the SMTP server offers no OAuth2 login (AUTH XOAUTH2)", temporary=False)
    try:
        await client.auth_xoauth2(account.smtp_user, token.reveal())
        return
    except aiosmtplib.SMTPAuthenticationError as exc:
        if _auth_temporary(exc):
            raise SubmissionFailed(
                f"SMTP login failed for now: {exc.code} {exc.message}", temporary=True, code=exc.code
            ) from None
    renewed = await _secret(credentials, account, renew=True)
    assert renewed is not None
    try:
        await client.auth_xoauth2(account.smtp_user, renewed.reveal())
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SubmissionFailed(
            f"SMTP refused the access token: {exc.code} {exc.message} ({reauth_hint(account)})",
            temporary=_auth_temporary(exc),
            code=exc.code,
        ) from None


def _auth_temporary(exc: aiosmtplib.SMTPAuthenticationError) -> bool:
    """454 4.7.0 "temporary authentication failure" (RFC 4954): the server cannot check now; a 535
    is the credentials themselves."""
    return 400 <= exc.code < 500
