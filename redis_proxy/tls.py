"""Build SSL contexts from the (plain-data) configuration.

Kept apart from `redis_proxy.config` so that loading key material is an
explicit step: callers re-run it on reload, which is how rotated certificates
are picked up.  Every failure becomes a one-line `ConfigError` naming the
config key, never a raw ssl traceback.
"""

from __future__ import annotations

import re
import ssl

from redis_proxy.config import ConfigError, UplinkConfig, parse_tcp_addr

# OpenSSL errors read like "[X509: KEY_VALUES_MISMATCH] key values mismatch
# (_ssl.c:3926)"; the bracketed code and source location mean nothing to users.
_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


class _EncryptedKey(Exception):
    """Raised from the password callback: the key file needs a passphrase."""


def _refuse_password() -> bytes:
    # Without a callback OpenSSL would prompt for the passphrase on the
    # terminal and hang a daemon; fail instead.
    raise _EncryptedKey()


def _ssl_text(exc: ssl.SSLError) -> str:
    text = _SSL_NOISE.sub("", str(exc)).strip()
    return text or exc.__class__.__name__


def _check_readable(key: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read {path}: {exc.strerror or exc}"]) from None


def _new_context(protocol: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    # TLS 1.0/1.1 are deprecated (RFC 8996); nothing worth supporting needs them.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_context(
    certfile: str, keyfile: str, where: str = "listen", cacertfile: str | None = None
) -> ssl.SSLContext:
    """A TLS server context for a listener; `where` names its config section.

    With `cacertfile`, every client must present a certificate signed by it
    (CERT_REQUIRED): the handshake fails otherwise.
    """
    # Check each file separately: load_cert_chain does not say which one failed.
    _check_readable(f"{where}.certfile", certfile)
    _check_readable(f"{where}.keyfile", keyfile)
    ctx = _new_context(ssl.PROTOCOL_TLS_SERVER)
    if cacertfile:
        _load_ca(ctx, f"{where}.cacertfile", cacertfile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    _load_chain(ctx, where, certfile, keyfile)
    return ctx


def _load_ca(ctx: ssl.SSLContext, key: str, cafile: str) -> None:
    _check_readable(key, cafile)
    try:
        ctx.load_verify_locations(cafile=cafile)
    except ssl.SSLError as exc:
        raise ConfigError([f"{key}: {cafile} does not contain a valid PEM certificate ({_ssl_text(exc)})"]) from None
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read {cafile}: {exc.strerror or exc}"]) from None


def _load_chain(ctx: ssl.SSLContext, where: str, certfile: str, keyfile: str) -> None:
    """Load a certificate and its key into `ctx`; every failure is a ConfigError naming the key at fault."""
    try:
        ctx.load_cert_chain(certfile, keyfile, password=_refuse_password)
    except _EncryptedKey:
        raise ConfigError(
            [f"{where}.keyfile: {keyfile} is encrypted with a passphrase, which is not supported"]
        ) from None
    except OSError as exc:
        if not isinstance(exc, ssl.SSLError):
            # The file vanished or lost permissions between the check and the load.
            raise ConfigError([f"{where}.certfile: cannot read {certfile} or {keyfile}: {exc.strerror or exc}"]) from None
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError([f"{where}.keyfile: {keyfile} does not match certfile {certfile}"]) from None
        raise ConfigError([_diagnose_chain(where, certfile, keyfile, exc)]) from None


def _diagnose_chain(where: str, certfile: str, keyfile: str, exc: ssl.SSLError) -> str:
    # OpenSSL reports both a bad certificate and a bad key as "PEM lib".  A
    # throwaway context that loads the certificate alone tells them apart.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=certfile)
    except ssl.SSLError as cert_exc:
        return f"{where}.certfile: {certfile} does not contain a valid PEM certificate ({_ssl_text(cert_exc)})"
    except OSError as os_exc:
        return f"{where}.certfile: cannot read {certfile}: {os_exc.strerror or os_exc}"
    return f"{where}.keyfile: {keyfile} does not contain a usable PEM private key ({_ssl_text(exc)})"


def uplink_context(uplink: UplinkConfig, where: str = "uplink") -> ssl.SSLContext | None:
    """A TLS client context for the uplink, or None when TLS is off."""
    if not uplink.tls:
        return None
    ctx = _new_context(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    if uplink.certfile and uplink.keyfile:
        # The client certificate a Redis with tls-auth-clients (its default) asks for.
        _check_readable(f"{where}.certfile", uplink.certfile)
        _check_readable(f"{where}.keyfile", uplink.keyfile)
        _load_chain(ctx, where, uplink.certfile, uplink.keyfile)
    if uplink.skipverify:
        # Order matters: check_hostname must be off before CERT_NONE is allowed.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cafile = uplink.cacertfile
    if not cafile:
        # Unreachable for validated configs; guards hand-built ones.
        raise ConfigError([f"{where}.tls: cacertfile is required when tls is true (or set skipverify to true)"])
    _load_ca(ctx, f"{where}.cacertfile", cafile)
    return ctx


# What OpenSSL reports when the server wanted a client certificate and got
# none (TLS 1.3: alert 116 on the first read; TLS 1.2: a handshake failure).
_NEEDS_CLIENT_CERT = ("CERTIFICATE_REQUIRED", "certificate required", "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def client_certificate_hint(exc: BaseException, has_certificate: bool) -> str:
    """Words to add to an uplink TLS failure when the server asked for a client certificate the proxy did not send."""
    text = f"{getattr(exc, 'reason', '')} {exc}"
    if any(marker in text for marker in _NEEDS_CLIENT_CERT) or (
        not has_certificate and "HANDSHAKE_FAILURE" in text.upper()
    ):
        return ": the uplink requires a TLS client certificate (set uplink.certfile and uplink.keyfile)"
    return ""


def uplink_server_hostname(uplink: UplinkConfig) -> str | None:
    """The server_hostname for the uplink TLS handshake (SNI and verification).

    A unix socket has no host name, so "localhost" is what its certificate
    is expected to name.
    """
    if not uplink.tls:
        return None
    if uplink.network == "unix":
        return "localhost"
    host, _ = parse_tcp_addr(uplink.addr)
    return host
