"""Signing in: the browser flow (authorization code, PKCE, loopback redirect) and the device flow.

The daemon runs the whole sign-in, so any front-end only has to show a URL (or a code) and
wait: ``begin`` returns what to show, ``wait`` returns once the provider has answered, and the
tokens stay here, bound to the user who began, until ``account.add`` or ``account.reauth``
takes them (``take``) — nothing is saved for a sign-in that never finishes.

Browser flow (RFC 8252): a one-shot HTTP listener on 127.0.0.1 and an ephemeral port is the
redirect target; the ``state`` and the PKCE verifier tie the answer to this sign-in, so another
local user who hits the port gains nothing.  Device flow (RFC 8628): for headless machines,
the user types a short code on another device while the daemon polls the token endpoint.

Lifetimes: each sign-in owns its listener and its one task (listening, then expiry; or polling);
``SignIns.aclose`` cancels and awaits them all.  A sign-in expires after ``SIGN_IN_TIMEOUT``;
finished ones are dropped when taken or ``KEEP_DONE`` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bimmaild.accounts.secrets import Secret
from bimmaild.oauth import flow
from bimmaild.oauth.clients import Client, Clients
from bimmaild.oauth.flow import OAuthError, Tokens
from bimmaild.oauth.http import EndpointUnreachable, post_form

log = logging.getLogger(__name__)

SIGN_IN_TIMEOUT = 600.0
KEEP_DONE = 600.0
MAX_REQUEST = 16 * 1024  # the redirect's request line and headers
# Sign-ins under way per user: each holds a listening port or a poller for up to 10 minutes.
MAX_PENDING = 8


class TooManySignIns(Exception):
    """The user has MAX_PENDING sign-ins under way already."""


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class SignIn:
    id: str
    owner: int
    client: Client
    method: str  # "browser" or "device"
    login_hint: str | None
    expires_at: float
    url: str = ""  # browser: the authorization URL; device: where to type the code
    user_code: str | None = None
    done: asyncio.Future[Tokens] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    finished_at: float | None = None
    task: asyncio.Task[None] | None = None
    # The client secret, read once: a device sign-in polls every few seconds for minutes, and each
    # read is a keyring round trip.  A Secret: its repr hides the value.
    client_secret: Secret | None = None
    secret_read: bool = False

    def to_public(self, now: float) -> dict[str, Any]:
        return {
            "flow": self.id,
            "method": self.method,
            "issuer": self.client.issuer.id,
            "url": self.url,
            "user_code": self.user_code,
            "expires_in": max(0, round(self.expires_at - now)),
        }


class SignIns:
    def __init__(
        self, clients: Clients, clock: Callable[[], float] = time.time, timeout: float = SIGN_IN_TIMEOUT
    ) -> None:
        self.clients = clients
        self.clock = clock
        self.timeout = timeout
        self._flows: dict[str, SignIn] = {}

    async def begin(self, owner: int, client: Client, method: str, login_hint: str | None) -> SignIn:
        self._drop_old()
        pending = [s for s in self._flows.values() if s.owner == owner and not s.done.done()]
        if len(pending) >= MAX_PENDING:
            raise TooManySignIns(f"{len(pending)} sign-ins are already under way (each ends within 10 minutes)")
        sign_in = SignIn(secrets.token_urlsafe(12), owner, client, method, login_hint, self.clock() + self.timeout)
        if method == "device":
            await self._begin_device(sign_in)
        else:
            await self._begin_browser(sign_in)
        self._flows[sign_in.id] = sign_in
        return sign_in

    def get(self, flow_id: str, owner: int) -> SignIn | None:
        sign_in = self._flows.get(flow_id)
        return sign_in if sign_in is not None and sign_in.owner == owner else None

    async def wait(self, sign_in: SignIn, timeout: float) -> Tokens | None:
        """The tokens once signed in, None if still waiting after ``timeout``; OAuthError if it failed."""
        try:
            return await asyncio.wait_for(asyncio.shield(sign_in.done), timeout)
        except TimeoutError:
            return None

    def take(self, sign_in: SignIn) -> Tokens:
        """The tokens of a finished sign-in, once: then it is gone."""
        tokens = sign_in.done.result()
        self._flows.pop(sign_in.id, None)
        return tokens

    async def aclose(self) -> None:
        flows, self._flows = list(self._flows.values()), {}
        for sign_in in flows:
            await _stop(sign_in)

    def _drop_old(self) -> None:
        now = self.clock()
        for sign_in in list(self._flows.values()):
            if sign_in.finished_at is not None and now - sign_in.finished_at > KEEP_DONE:
                del self._flows[sign_in.id]

    def _finish(self, sign_in: SignIn, result: Tokens | BaseException) -> None:
        if sign_in.done.done():
            return
        if isinstance(result, BaseException):
            sign_in.done.set_exception(result)
            log.info("sign-in %s with %s failed: %s", sign_in.method, sign_in.client.issuer.id, result)
        else:
            sign_in.done.set_result(result)
            log.info("sign-in %s with %s done", sign_in.method, sign_in.client.issuer.id)
        sign_in.finished_at = self.clock()

    # -- browser --------------------------------------------------------------------------

    async def _begin_browser(self, sign_in: SignIn) -> None:
        pkce = flow.pkce()
        state = secrets.token_urlsafe(16)
        served = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                status, page = await self._redirect(sign_in, reader, state, pkce.verifier, redirect_uri)
                body = _page(page).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\nCache-Control: no-store\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                if sign_in.done.done():
                    served.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        redirect_uri = f"http://127.0.0.1:{port}/"
        sign_in.url = flow.authorization_url(
            sign_in.client.issuer.auth_url, sign_in.client.client_id, redirect_uri, sign_in.client.issuer.scopes,
            state, pkce.challenge, sign_in.login_hint,
        )  # fmt: skip

        async def listen() -> None:
            try:
                async with asyncio.timeout(max(sign_in.expires_at - self.clock(), 0)):
                    await served.wait()
            except TimeoutError:
                self._finish(sign_in, OAuthError("expired", "nobody signed in in time"))
            finally:
                server.close()
                await server.wait_closed()

        sign_in.task = asyncio.create_task(listen(), name=f"sign-in {sign_in.id}")

    async def _redirect(
        self, sign_in: SignIn, reader: asyncio.StreamReader, state: str, verifier: str, redirect_uri: str
    ) -> tuple[str, str]:
        """The browser's GET of the redirect: (HTTP status, what the page says)."""
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST:
            return "431 Request Header Fields Too Large", "Bad request."
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            return "405 Method Not Allowed", "Bad request."
        query = parse_qs(urlsplit(parts[1]).query)
        if sign_in.done.done():
            return "410 Gone", "This sign-in is already over; you can close this window."
        if not {"code", "error"} & query.keys():
            return "404 Not Found", "Not found."  # the browser's favicon, a stray visitor
        try:
            code = flow.redirect_code(query, state)
        except OAuthError as exc:
            if exc.error == "invalid_state":
                return "400 Bad Request", "This answer does not belong to the sign-in under way."
            self._finish(sign_in, exc)
            return "200 OK", f"Sign-in refused ({exc.error}). You can close this window."
        try:
            tokens = await self._exchange(sign_in, {
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            })  # fmt: skip
        except (OAuthError, EndpointUnreachable) as exc:
            self._finish(sign_in, exc if isinstance(exc, OAuthError) else OAuthError("unreachable", str(exc)))
            return "200 OK", "The sign-in could not be completed; bimmail says why. You can close this window."
        self._finish(sign_in, tokens)
        return "200 OK", "Signed in to bimmail. You can close this window."

    async def _secret(self, sign_in: SignIn) -> Secret | None:
        if not sign_in.secret_read:
            sign_in.client_secret, sign_in.secret_read = await self.clients.secret(sign_in.client), True
        return sign_in.client_secret

    async def _exchange(self, sign_in: SignIn, form: dict[str, str]) -> Tokens:
        client = sign_in.client
        status, body = await post_form(
            client.issuer.token_url, form, client_id=client.client_id, client_secret=await self._secret(sign_in)
        )
        tokens = flow.parse_tokens(status, body, self.clock())
        if tokens.refresh_token is None:
            raise OAuthError("no_refresh_token", "the provider gave no refresh token (offline access not granted)")
        return tokens

    # -- device ---------------------------------------------------------------------------

    async def _begin_device(self, sign_in: SignIn) -> None:
        client = sign_in.client
        if not client.issuer.device_url:
            raise OAuthError("unsupported", f"{client.issuer.id} has no device sign-in for mail: use the browser")
        status, body = await post_form(
            client.issuer.device_url, {"scope": " ".join(client.issuer.scopes)},
            client_id=client.client_id, client_secret=await self._secret(sign_in),
        )  # fmt: skip
        device = flow.parse_device(status, body, self.clock())
        sign_in.url = device.verification_uri_complete or device.verification_uri
        sign_in.user_code = device.user_code
        sign_in.expires_at = min(sign_in.expires_at, device.expires_at)
        sign_in.task = asyncio.create_task(self._poll(sign_in, device), name=f"sign-in {sign_in.id}")

    async def _poll(self, sign_in: SignIn, device: flow.DeviceAuthorization) -> None:
        interval = device.interval
        form = {"grant_type": DEVICE_GRANT, "device_code": device.device_code.reveal()}
        while not sign_in.done.done():
            if self.clock() >= sign_in.expires_at:
                self._finish(sign_in, OAuthError("expired", "the code was not entered in time"))
                return
            await asyncio.sleep(interval)
            try:
                tokens = await self._exchange(sign_in, form)
            except EndpointUnreachable:
                continue  # a network blip: the code stays valid, keep polling
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5  # RFC 8628 §3.5
                    continue
                self._finish(sign_in, exc)
                return
            self._finish(sign_in, tokens)


async def _stop(sign_in: SignIn) -> None:
    if sign_in.task is not None:
        sign_in.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sign_in.task
    if not sign_in.done.done():
        sign_in.done.set_exception(OAuthError("cancelled", "the daemon is stopping"))
    sign_in.done.exception()  # retrieved: no "exception never retrieved" warning


def _page(message: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>bimmail</title></head>"
        f"<body><p>{html.escape(message)}</p></body></html>"
    )
