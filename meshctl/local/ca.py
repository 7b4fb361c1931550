"""The mesh CA: a root certificate and short-lived SPIFFE leaf certificates (the `cryptography` package).

- The root (EC P-256, 10 years) lives in the state directory: `ca/root-cert.pem`, and its key
  `ca/root-key.pem` readable by its owner only.
- Each proxy's leaf carries its identity as a URI SAN `spiffe://cluster.local/ns/NS/sa/SA`
  (as istiod's), is valid for `lifetime` (default 1 hour) from one minute ago, and is re-issued
  when less than half of its lifetime is left (`needs_rotation`). Proxies read their leaf and
  the root as SDS secrets `default` and `ROOTCA` from files replaced atomically, so a rotation
  needs no restart and fails no request: established connections keep their session, new
  handshakes use the new certificate.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from meshctl.files import write_atomic
from meshctl.local.model import TRUST_DOMAIN

DEFAULT_LIFETIME = 3600.0
BACKDATE = _dt.timedelta(minutes=1)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


@dataclass
class Leaf:
    cert_pem: str
    key_pem: str
    not_before: _dt.datetime
    not_after: _dt.datetime
    serial: int

    def needs_rotation(self, now: _dt.datetime | None = None) -> bool:
        """True when less than half of the certificate's lifetime is left (counted from its issue,
        one minute after its backdated not-before)."""
        now = now or _now()
        issued = self.not_before + BACKDATE
        return now >= issued + (self.not_after - issued) / 2


class CA:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key

    @property
    def root_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def create(cls, trust_domain: str = TRUST_DOMAIN) -> "CA":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                          x509.NameAttribute(NameOID.COMMON_NAME, "meshctl local root CA")])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + _dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path) -> "CA":
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        directory = Path(directory)
        cert_path, key_path = directory / "root-cert.pem", directory / "root-key.pem"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return cls(cert, key)
        ca = cls.create()
        directory.mkdir(parents=True, exist_ok=True)
        key_pem = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
        _write_private(key_path, key_pem)
        write_atomic(str(cert_path), ca.root_pem)
        return ca

    def issue(self, spiffe_id: str, lifetime: float = DEFAULT_LIFETIME) -> Leaf:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        not_before = now - BACKDATE
        not_after = now + _dt.timedelta(seconds=lifetime)
        serial = x509.random_serial_number()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(serial)
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return Leaf(cert_pem, key_pem, not_before, not_after, serial)


def read_leaf(cert_pem: str, key_pem: str) -> Leaf:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return Leaf(cert_pem, key_pem, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number)


def spiffe_ids(cert_pem: str) -> list[str]:
    """The URI SANs of a PEM certificate."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _write_private(path: Path, data: bytes) -> None:
    """A key only its owner may read: the file is made 0600 first, and write_atomic keeps the
    mode of the file it replaces."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    write_atomic(str(path), data)
