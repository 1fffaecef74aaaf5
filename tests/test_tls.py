"""Unit tests for redis_proxy.tls, with certificates generated per test.

Handshakes run entirely in memory (ssl.MemoryBIO), so these tests need no
sockets, no event loop and no network.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from redis_proxy.config import ConfigError, UplinkConfig
from redis_proxy.tls import server_context, uplink_context, uplink_server_hostname
from tests.certs import CertFiles, make_ca_and_cert


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return make_ca_and_cert(tmp_path / "certs")


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str | None) -> bytes:
    """Run a TLS handshake through memory BIOs, send one message, return it."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if client_done and server_done:
            break
    assert client_done and server_done, "handshake did not finish"
    client.write(b"PING")
    s_in.write(c_out.read())
    return server.read(100)


def uplink(certs: CertFiles, **overrides: object) -> UplinkConfig:
    fields: dict[str, object] = {"addr": "localhost:6379", "tls": True, "cacertfile": str(certs.ca_cert)}
    fields.update(overrides)
    return UplinkConfig.model_validate(fields)


def config_error(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    (problem,) = info.value.problems
    assert "_ssl.c" not in problem and "Traceback" not in problem
    return problem


# --- contexts that work ------------------------------------------------------------


def test_server_context_settings(certs: CertFiles) -> None:
    ctx = server_context(str(certs.cert), str(certs.key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE  # clients are not asked for certificates


def test_uplink_context_verifies_by_default(certs: CertFiles) -> None:
    ctx = uplink_context(uplink(certs))
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("addr", ["localhost:6379", "127.0.0.1:6379", "[::1]:6379"])
def test_handshake_with_verified_hostname(certs: CertFiles, addr: str) -> None:
    cfg = uplink(certs, addr=addr)
    client = uplink_context(cfg)
    assert client is not None
    assert handshake(server_context(str(certs.cert), str(certs.key)), client, uplink_server_hostname(cfg)) == b"PING"


def test_handshake_over_unix_socket_uses_localhost(certs: CertFiles) -> None:
    cfg = uplink(certs, addr="/run/redis.sock", network="unix")
    assert uplink_server_hostname(cfg) == "localhost"
    client = uplink_context(cfg)
    assert client is not None
    assert handshake(server_context(str(certs.cert), str(certs.key)), client, "localhost") == b"PING"


def test_uplink_without_tls(certs: CertFiles) -> None:
    cfg = UplinkConfig(addr="127.0.0.1:6379")
    assert uplink_context(cfg) is None
    assert uplink_server_hostname(cfg) is None


def test_uplink_server_hostname_strips_brackets(certs: CertFiles) -> None:
    assert uplink_server_hostname(uplink(certs, addr="[::1]:6380")) == "::1"
    assert uplink_server_hostname(uplink(certs, addr="redis.example.com:6380")) == "redis.example.com"


# --- verification failures and skipverify ---------------------------------------------


def test_wrong_hostname_is_rejected(certs: CertFiles) -> None:
    client = uplink_context(uplink(certs, addr="example.com:6379"))
    assert client is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        handshake(server_context(str(certs.cert), str(certs.key)), client, "example.com")


def test_unknown_ca_is_rejected(certs: CertFiles, tmp_path: Path) -> None:
    other = make_ca_and_cert(tmp_path / "other")
    client = uplink_context(uplink(certs, cacertfile=str(other.ca_cert)))
    assert client is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_context(str(certs.cert), str(certs.key)), client, "localhost")


def test_skipverify_accepts_anything(certs: CertFiles) -> None:
    cfg = UplinkConfig(addr="example.com:6379", tls=True, skipverify=True)
    client = uplink_context(cfg)
    assert client is not None
    assert client.verify_mode == ssl.CERT_NONE and client.check_hostname is False
    assert uplink_server_hostname(cfg) == "example.com"
    assert handshake(server_context(str(certs.cert), str(certs.key)), client, "example.com") == b"PING"


def test_rotated_certificates_are_picked_up_by_a_new_context(certs: CertFiles, tmp_path: Path) -> None:
    # Reload works by building fresh contexts; they must read the new files.
    old_server = server_context(str(certs.cert), str(certs.key))
    rotated = make_ca_and_cert(tmp_path / "certs")  # same paths, new CA and key
    assert rotated == certs
    client = uplink_context(uplink(certs))
    assert client is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(old_server, client, "localhost")
    assert handshake(server_context(str(certs.cert), str(certs.key)), client, "localhost") == b"PING"


# --- readable errors ---------------------------------------------------------------------


def test_key_not_matching_cert(certs: CertFiles) -> None:
    problem = config_error(server_context, str(certs.cert), str(certs.other_key))
    assert problem == f"listen.keyfile: {certs.other_key} does not match certfile {certs.cert}"


def test_where_names_the_section(certs: CertFiles) -> None:
    problem = config_error(server_context, str(certs.cert), str(certs.other_key), where="admin")
    assert problem.startswith("admin.keyfile: ")


def test_missing_cert_and_key_files(certs: CertFiles, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    problem = config_error(server_context, str(missing), str(certs.key), where="listen_raw")
    assert problem == f"listen_raw.certfile: cannot read {missing}: No such file or directory"
    problem = config_error(server_context, str(certs.cert), str(missing))
    assert problem == f"listen.keyfile: cannot read {missing}: No such file or directory"


def test_garbage_cert_file(certs: CertFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    problem = config_error(server_context, str(junk), str(certs.key))
    assert problem.startswith(f"listen.certfile: {junk} does not contain a valid PEM certificate")


def test_key_given_as_cert_is_blamed_on_certfile(certs: CertFiles) -> None:
    problem = config_error(server_context, str(certs.key), str(certs.key))
    assert problem.startswith("listen.certfile: ")


def test_garbage_key_file(certs: CertFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk-key.pem"
    junk.write_text("not a key\n")
    problem = config_error(server_context, str(certs.cert), str(junk))
    assert problem.startswith(f"listen.keyfile: {junk} does not contain a usable PEM private key")


def test_encrypted_key_fails_instead_of_prompting(certs: CertFiles, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    problem = config_error(server_context, str(certs.cert), str(encrypted))
    assert problem == f"listen.keyfile: {encrypted} is encrypted with a passphrase, which is not supported"


def test_bad_cacertfile(certs: CertFiles, tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    problem = config_error(uplink_context, uplink(certs, cacertfile=str(missing)))
    assert problem == f"uplink.cacertfile: cannot read {missing}: No such file or directory"
    problem = config_error(uplink_context, uplink(certs, cacertfile=str(certs.key)), where="uplink")
    assert problem.startswith(f"uplink.cacertfile: {certs.key} does not contain a valid PEM certificate (")


# --- the shared generator ------------------------------------------------------------------


def test_generated_files(certs: CertFiles) -> None:
    for path in (certs.ca_cert, certs.cert, certs.key, certs.other_key):
        assert path.is_file() and path.read_bytes().startswith(b"-----BEGIN ")
    assert certs.key.stat().st_mode & 0o077 == 0  # keys are private to the owner
    assert certs.key.read_bytes() != certs.other_key.read_bytes()
