"""Certificates and keys for the local control plane, made with ``cryptography``.

One CA signs a serving certificate for the apiserver and a client certificate per user;
the service-account signing pair is a separate RSA key. Everything is written as PEM
into one directory and lives only as long as the cluster's state directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test session, short enough that a forgotten directory is harmless.
_VALIDITY = datetime.timedelta(days=7)
_CLOCK_SKEW = datetime.timedelta(minutes=5)

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as written on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says its holder is: a user name and its groups."""

    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterPki:
    """Every PEM file the control plane reads."""

    ca: CertPair
    apiserver: CertPair
    clients: dict[str, CertPair]
    service_account_key: Path
    service_account_pub: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: _PrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - _CLOCK_SKEW).not_valid_after(now + _VALIDITY)


def _make_ca(directory: Path) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sageport-test-ca")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
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
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(cert, pair.cert)
    _write_key(key, pair.key)
    return pair, cert, key


def _issue(
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    san: x509.SubjectAlternativeName | None,
    pair: CertPair,
) -> None:
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    _write_cert(_validity(builder).sign(ca_key, hashes.SHA256()), pair.cert)
    _write_key(key, pair.key)


def _service_account_pair(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path, public_path = directory / "sa.key", directory / "sa.pub"
    _write_key(key, private_path)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def generate_pki(
    directory: Path, *, service_ip: str, clients: list[ClientIdentity], extra_ips: tuple[str, ...] = ()
) -> ClusterPki:
    """Write a CA, the apiserver's serving pair, one client pair per identity and the SA keys.

    ``extra_ips`` are more addresses the apiserver is reached at (the real node's, for pods).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_cert, ca_key = _make_ca(directory)

    apiserver = CertPair(directory / "apiserver.crt", directory / "apiserver.key")
    dns_names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    dns_names.append("kubernetes.default.svc.cluster.local")
    san = x509.SubjectAlternativeName(
        [
            *(x509.DNSName(name) for name in dns_names),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(service_ip)),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips),
        ]
    )
    _issue(
        ca_cert=ca_cert,
        ca_key=ca_key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=san,
        pair=apiserver,
    )

    client_pairs: dict[str, CertPair] = {}
    for identity in clients:
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in identity.groups]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
        pair = CertPair(directory / f"{identity.file_stem}.crt", directory / f"{identity.file_stem}.key")
        _issue(
            ca_cert=ca_cert,
            ca_key=ca_key,
            subject=x509.Name(attributes),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            san=None,
            pair=pair,
        )
        client_pairs[identity.file_stem] = pair

    sa_key, sa_pub = _service_account_pair(directory)
    return ClusterPki(
        ca=ca,
        apiserver=apiserver,
        clients=client_pairs,
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
