"""admin.pass_file: the admin password read from a file of its own (a Docker/Kubernetes secret, a systemd credential)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redis_proxy.config import ConfigError, load_config, redacted


def write(tmp_path: Path, admin: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    config = {"uplink": {"addr": "127.0.0.1:6379"}, "listen": {"addr": "127.0.0.1:7010"}, "admin": {"addr": "127.0.0.1:7012", **admin}}
    path.write_text(json.dumps(config))
    return path


def test_the_password_comes_from_the_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "admin-pass").write_text("s3cret \n")  # as `echo` leaves it
    config = load_config(str(write(tmp_path, {"pass_file": "admin-pass"})))
    assert config.admin is not None
    assert config.admin.password == "s3cret"
    assert config.admin.pass_file == str(tmp_path / "admin-pass")
    assert redacted(config)["admin"]["pass"] == "[removed]"


def test_a_reload_reads_the_file_again(tmp_path: Path) -> None:
    secret = tmp_path / "admin-pass"
    secret.write_text("first")
    path = write(tmp_path, {"pass_file": str(secret)})
    secret.write_text("second")
    admin = load_config(str(path)).admin
    assert admin is not None and admin.password == "second"


@pytest.mark.parametrize(
    ("admin", "content", "expected"),
    [
        ({"pass": "x", "pass_file": "admin-pass"}, "y", "admin.pass_file: pass and pass_file cannot both be set"),
        ({"pass_file": "missing"}, None, "admin.pass_file: cannot read {dir}/missing: No such file or directory"),
        ({"pass_file": "admin-pass"}, " \n", "admin.pass_file: {dir}/admin-pass is empty"),
    ],
)
def test_problems_are_named(tmp_path: Path, admin: dict[str, Any], content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "admin-pass").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, admin)))
    assert expected.format(dir=tmp_path) in caught.value.problems
