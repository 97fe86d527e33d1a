"""SASL initial responses carrying an OAuth2 access token, for IMAP AUTHENTICATE and SMTP AUTH."""

from __future__ import annotations

import base64


def xoauth2(user: str, token: str) -> str:
    """Google's XOAUTH2 initial response, base64 (IMAP and SMTP alike)."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")


def oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """RFC 7628's OAUTHBEARER initial response, base64 (the GS2 header names the user)."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    raw = f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")
