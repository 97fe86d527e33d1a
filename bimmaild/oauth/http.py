"""POSTs to OAuth2 endpoints (token, device authorization), with httpx.

Only ``application/x-www-form-urlencoded`` requests with JSON answers are needed.  Redirects
are not followed (a token endpoint that redirects is misconfigured, and following would resend
the client secret), and the certificate is always verified — against the system trust store, as
for IMAP and SMTP (``tls.client_context``, shared; httpx would build its own from certifi's
bundle for every request: ~20 ms of event loop, and a CA installed on the machine not trusted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from bimmaild import tls
from bimmaild.accounts.secrets import Secret

TIMEOUT = 20.0


class EndpointUnreachable(Exception):
    """The endpoint could not be reached or answered nonsense: try again later."""


async def post_form(
    url: str, form: Mapping[str, str], *, client_id: str, client_secret: Secret | None, timeout: float = TIMEOUT
) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body or None).  The client authenticates in the form (RFC 6749
    §2.3.1 allows it; Google and Microsoft accept it), so no Basic header encoding pitfalls."""
    data = {**form, "client_id": client_id}
    if client_secret is not None:
        data["client_secret"] = client_secret.reveal()
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=tls.client_context()) as client:
            response = await client.post(url, data=data, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise EndpointUnreachable(f"{_host(url)}: {type(exc).__name__}: {exc}") from None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if body is None and response.status_code >= 500:
        raise EndpointUnreachable(f"{_host(url)} answered HTTP {response.status_code}")
    return response.status_code, body


def _host(url: str) -> str:
    return httpx.URL(url).host or url
