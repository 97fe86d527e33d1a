"""TLS for mail connections: verifying contexts, and describing certificates in reports.

Certificates are always verified (R-B3): the system trust store, plus the
account's ``tls_ca_file`` when set.  ``inspection_context`` does not verify;
it exists only to *read* a certificate that failed verification, so that a
report can show its names and fingerprint.  It is never used to log in or to
move mail.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from datetime import UTC
from pathlib import Path
from typing import Any

# OpenSSL X509_V_ERR_* codes that SSLCertVerificationError.verify_code carries.
EXPIRED = 10
NOT_YET_VALID = 9
UNTRUSTED = {18, 19, 20, 21, 2, 27}  # self-signed, self-signed in chain, unknown issuer …
NAME_MISMATCH = {62, 64}  # host name / IP address mismatch


CONTEXT_LIFETIME = 3600.0  # seconds: a changed system trust store is seen within the hour

_contexts: dict[tuple[str | None, int | None], tuple[float, ssl.SSLContext]] = {}


def client_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying context, shared: building one reads the system trust store (about 20 ms
    of blocked event loop here), and every fetch, mirror and send needs one.  A CA file
    that changes (its mtime) gets a fresh context; callers must not modify it."""
    try:
        stamp = Path(ca_file).stat().st_mtime_ns if ca_file else None
    except OSError:
        stamp = None  # unreadable: building the context reports it
    key = (ca_file, stamp)
    now = time.monotonic()
    cached = _contexts.get(key)
    if cached is not None and now - cached[0] < CONTEXT_LIFETIME:
        return cached[1]
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if len(_contexts) > 64:
        _contexts.clear()
    _contexts[key] = (now, context)
    return context


def inspection_context() -> ssl.SSLContext:
    """No verification: for reading a rejected certificate into a report, nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def describe_certificate(der: bytes) -> dict[str, Any]:
    """Subject, issuer, names, validity and SHA-256 fingerprint of a DER certificate."""
    fingerprint = hashlib.sha256(der).hexdigest()
    info: dict[str, Any] = {"sha256": ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()}
    try:
        from cryptography import x509
    except ImportError:  # cryptography comes with keyring on Linux; without it, the fingerprint only
        return info
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return info
    info["subject"] = cert.subject.rfc4514_string()
    info["issuer"] = cert.issuer.rfc4514_string()
    info["self_signed"] = cert.subject == cert.issuer
    info["not_after"] = cert.not_valid_after_utc.astimezone(UTC).isoformat(timespec="seconds")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        info["names"] = [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        info["names"] = []
    return info
