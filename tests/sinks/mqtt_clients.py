"""MQTT test helpers: a subscriber (plaintext or TLS) and certificates made for the test (a plain module)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import pathlib
import ssl
import threading
import time


class Subscriber:
    """A persistent-session QoS 1 subscriber: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1",
                 username: str | None = None, password: str | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{time.monotonic_ns()}",
                                  clean_session=False)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload)))
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(5.0)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def wait(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def make_certificates(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("biomoe test CA")).issuer_name(name("biomoe test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": folder / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(stem, common_name, sans, usage):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[stem] = folder / f"{stem}.pem"
        out[stem].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[stem + "_key"] = folder / f"{stem}.key"
        write_key(key, out[stem + "_key"])

    leaf("server", "localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
         ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("other_host", "broker.example", [x509.DNSName("broker.example")], ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("client", "gateway-1", [x509.DNSName("gateway-1")], ExtendedKeyUsageOID.CLIENT_AUTH)
    return out


def tls_listener(certs, *, server="server", require_certificate=False) -> str:
    return (f"cafile {certs['ca']}\ncertfile {certs[server]}\nkeyfile {certs[server + '_key']}\n"
            f"require_certificate {str(require_certificate).lower()}\n")


def client_context(certs) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs["ca"]))
    context.load_cert_chain(str(certs["client"]), str(certs["client_key"]))
    return context
