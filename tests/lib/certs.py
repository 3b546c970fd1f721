"""tests/lib/certs.py -- certificates for the mesh mTLS tests and the bench, made with Python's
`cryptography` (Debian's python3-cryptography): P-256 keys, SHA-256 signatures.

  make_ca(d, name)                  a self-signed CA: writes d/<name>.crt, returns (cert, key)
  make_leaf(d, name, ca, sans, ...) a leaf signed by ca: writes d/<name>.crt and d/<name>.key,
                                    returns their paths; a spiffe:// SAN is a URI, others DNS
  workload_identity(d, name, ca, spiffe_id)
                                    a sidecar's certificate, as a Proxy spec.identity dict
  public_style_server(d)            a year-long CA and a 90-day server certificate for
                                    127.0.0.1 with CRL and OCSP addresses: (ca, crt, key)

Validity is NOW - 1 day .. NOW + 1 day (an expired leaf ended yesterday), so clocks that differ
by hours do not matter. Files are written readable by all (a proxy running as uid 1337 reads
them).
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def make_ca(d, name):
    """A self-signed CA; writes only d/<name>.crt (the key stays in memory)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write(os.path.join(str(d), name + ".crt"), cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_leaf(d, name, ca, sans, expired=False, client=None):
    """Writes <name>.crt / <name>.key signed by ca (cert, key); returns their paths.
    client: True for clientAuth only, False for serverAuth only, None for both (a workload
    certificate, which a sidecar presents on both sides)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    start = NOW - datetime.timedelta(days=3 if expired else 1)
    end = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=1)
    names = [x509.UniformResourceIdentifier(s) if s.startswith("spiffe://") else x509.DNSName(s)
             for s in sans]
    usages = {True: [ExtendedKeyUsageOID.CLIENT_AUTH], False: [ExtendedKeyUsageOID.SERVER_AUTH],
              None: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}[client]
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt, k = os.path.join(str(d), name + ".crt"), os.path.join(str(d), name + ".key")
    _write(crt, cert.public_bytes(serialization.Encoding.PEM))
    _write(k, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return crt, k


def workload_identity(d, name, ca, spiffe_id, ca_name="mesh-ca"):
    """A sidecar's certificate for spiffe_id, as a Proxy spec.identity (ca written by
    make_ca(d, ca_name))."""
    crt, key = make_leaf(d, name, ca, [spiffe_id])
    return {"certificateChain": crt, "privateKey": key,
            "rootCertificates": os.path.join(str(d), ca_name + ".crt")}


def public_style_server(d):
    """A server certificate shaped like one from a public CA, so that a TLS scanner judges
    the proxy and not the test's certificate: a year-long CA (give it to testssl with --add-ca), a
    90-day leaf for 127.0.0.1 and localhost, with CRL and OCSP addresses (never fetched: no
    --phone-out)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("public-ca"))
          .issuer_name(_name("public-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(NOW - datetime.timedelta(days=1))
          .not_valid_after(NOW + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ocsp = x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                  x509.UniformResourceIdentifier("http://127.0.0.1:9/ocsp"))
    crl = x509.DistributionPoint([x509.UniformResourceIdentifier("http://127.0.0.1:9/ca.crl")],
                                 None, None, None)
    leaf = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.AuthorityInformationAccess([ocsp]), critical=False)
            .add_extension(x509.CRLDistributionPoints([crl]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(str(d), f) for f in ("public-ca.crt", "public.crt", "public.key")]
    _write(paths[0], ca.public_bytes(serialization.Encoding.PEM))
    _write(paths[1], leaf.public_bytes(serialization.Encoding.PEM))
    _write(paths[2], key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return paths
