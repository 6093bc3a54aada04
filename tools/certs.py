"""Create a self-signed TLS certificate and key for local use, if the files named by the
config's server.tls are missing. Existing files are left alone. The key is written with mode
0600. Never use such a certificate outside a development machine."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path


def self_signed(cert: Path, key: Path, common_name: str = "DAL local") -> bool:
    """Write a self-signed certificate for localhost/127.0.0.1 and its key unless both exist;
    returns whether files were written."""
    if cert.exists() and key.exists():
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond --config."""


def run(args: argparse.Namespace) -> int:
    from config.loader import load_config

    config = load_config(Path(args.config))
    tls = config.server.tls
    if tls is None:
        print("server.tls is not set in the config: nothing to do")
        return 0
    if self_signed(Path(tls.cert), Path(tls.key)):
        print(f"wrote a self-signed certificate {tls.cert} and key {tls.key} (local use only)")
    else:
        print(f"{tls.cert} and {tls.key} exist; left as they are")
    return 0
