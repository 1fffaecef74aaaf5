"""The shared password check: right and wrong answers (its timing is by construction: fixed-size digests)."""

from redis_proxy.passwords import password_matches


def test_password_matches() -> None:
    assert password_matches(b"s3cret", b"s3cret")
    assert not password_matches(b"s3cre", b"s3cret")
    assert not password_matches(b"s3cret" * 1000, b"s3cret")
    assert not password_matches(b"", b"s3cret")
    assert password_matches("pässword".encode(), "pässword".encode())
