"""Throw-away TLS material for the test servers: one CA, one server certificate.

The certificate is valid for ``localhost`` and ``127.0.0.1`` (not for the
other names tests use to provoke a host-name mismatch, e.g. ``127.0.0.2``).
Clients trust it only through ``ca_file``, so the default system trust store
rejects it — which is what "untrusted certificate" tests need.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsMaterial:
    ca_file: Path  # PEM of the CA: what an account's tls_ca_file points at
    cert_file: Path  # server certificate chain, PEM
    key_file: Path  # server private key, PEM

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls(directory: Path) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="bimmail test CA")
    cert = ca.issue_cert("localhost", "127.0.0.1")
    material = TlsMaterial(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(material.ca_file))
    cert.private_key_pem.write_to_path(str(material.key_file))
    cert.cert_chain_pems[0].write_to_path(str(material.cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(material.cert_file), append=True)
    material.key_file.chmod(0o600)
    return material
