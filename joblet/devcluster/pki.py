"""A throw-away PKI for the local control plane: one CA, serving certificates for the API server
and the controller-manager, client certificates (name = CN, groups = O, which is how the API server
reads them) and the service-account signing key. Everything is written as PEM into a directory the
caller removes."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA's files; it signs every other certificate of one control plane."""

    cert: Path
    key: Path

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.key}: expected an EC private key")
        return cert, key

    def issue_server(self, directory: Path, name: str, hosts: tuple[str, ...]) -> CertPair:
        """A serving certificate valid for ``hosts`` (IP addresses or DNS names)."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(
            directory,
            name,
            common_name=name,
            groups=(),
            sans=sans,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
        )

    def issue_client(
        self,
        directory: Path,
        name: str,
        groups: tuple[str, ...] = (),
        units: tuple[str, ...] = (),
    ) -> CertPair:
        """A client certificate: the API server takes CN as the user name and O as its groups;
        a Joblet agent takes OU as the caller's role (admin, viewer)."""
        return self._issue(
            directory,
            f"user-{_safe(name)}",
            common_name=name,
            groups=groups,
            units=units,
            sans=[],
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def _issue(
        self,
        directory: Path,
        stem: str,
        *,
        common_name: str,
        groups: tuple[str, ...],
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        units: tuple[str, ...] = (),
    ) -> CertPair:
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return _write_pair(directory, stem, cert, key)


def create_ca(directory: Path, name: str = "joblet-devcluster-ca") -> CertificateAuthority:
    """A new self-signed CA in ``directory`` (ca.crt, ca.key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = _write_pair(directory, "ca", cert, key)
    return CertificateAuthority(cert=pair.cert, key=pair.key)


def create_service_account_key(directory: Path) -> CertPair:
    """RSA key pair that signs service-account tokens; ``cert`` holds the public key (sa.pub)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = directory / "sa.key"
    pub = directory / "sa.pub"
    _write_secret(priv, _private_pem(key))
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return CertPair(cert=pub, key=priv)


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pair(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertPair:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_secret(key_path, _private_pem(key))
    return CertPair(cert=cert_path, key=key_path)


def _write_secret(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
