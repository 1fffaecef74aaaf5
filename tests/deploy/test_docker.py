"""docker/: the Dockerfile, compose.yaml and prometheus.yml, checked by construction.

No container engine runs here (and base images cannot be pulled), so the
files are parsed and checked against each other and against what the proxy
really serves: the example config loads through the proxy's own loader, the
proxy is started with it (on loopback and free ports) and the Dockerfile's
own HEALTHCHECK command and Prometheus's scrape (with the same secret) are
run against it. What this does not show is said in docker/README.md.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployed import PLACEHOLDER_PASSWORD, REPO_ROOT, get, localized, tcp_port
from redis_proxy.config import load_config, parse_config
from servers import ProxyProcess, RedisServer, free_port

DOCKER = REPO_ROOT / "docker"
CONFIG = DOCKER / "proxy-config" / "config.json"
ProxyFactory = Callable[..., ProxyProcess]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (DOCKER / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def one(keyword: str) -> str:
    found = [args for key, args in instructions() if key == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for key, args in instructions():
        if key == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                values[name] = value
    return values


def healthcheck_command() -> list[str]:
    options, _, command = one("HEALTHCHECK").partition("CMD ")
    return list(json.loads(command))


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def prometheus() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "prometheus.yml").read_text()))


def example() -> dict[str, Any]:
    return dict(json.loads(CONFIG.read_text()))


def test_runs_as_a_fixed_non_root_user() -> None:
    user = one("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    # The user the image creates has that UID (a UID with no passwd entry confuses some tools).
    assert any(f"useradd --system --uid {uid} " in args for key, args in instructions() if key == "RUN")
    # Nothing after USER switches back.
    keys = [key for key, _ in instructions()]
    assert "RUN" not in keys[keys.index("USER"):]


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for key, args in instructions():
        if key == "COPY":
            *sources, _target = shlex.split(args)
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
                assert source.rstrip("/") in kept, f"{source} is excluded from the build context"
    # pip install -c names a file that was copied.
    assert any("-c constraints.txt" in args for key, args in instructions() if key == "RUN")


def test_the_example_config_loads_and_has_an_admin_password(tmp_path: Path) -> None:
    config = parse_config(CONFIG.read_text(), source=str(CONFIG))
    assert config.admin is not None and config.admin.pass_file and not config.admin.password
    secret = tmp_path / "admin_pass"
    secret.write_text("placeholder\n")
    data = example()
    data["admin"]["pass_file"] = str(secret)
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded = load_config(str(tmp_path / "config.json"))
    assert loaded.admin is not None and loaded.admin.password == "placeholder"


def test_ports_and_paths_agree() -> None:
    data = example()
    listen, admin = tcp_port(data["listen"]["addr"]), tcp_port(data["admin"]["addr"])
    assert data["listen"]["addr"].startswith("0.0.0.0:") and data["admin"]["addr"].startswith("0.0.0.0:")
    assert {int(port) for port in one("EXPOSE").split()} == {listen, admin}
    url = env()["REDIS_PROXY_HEALTHZ_URL"]
    assert url == f"http://127.0.0.1:{admin}/healthz"
    assert "REDIS_PROXY_HEALTHZ_URL" in " ".join(healthcheck_command())
    entrypoint = json.loads(one("ENTRYPOINT"))
    assert entrypoint[:2] == ["redis-proxy", "-f"]
    config_in_container = Path(entrypoint[2])

    services = compose()["services"]
    assert set(services) == {"redis", "redis-proxy", "prometheus"}
    proxy = services["redis-proxy"]
    assert (DOCKER / proxy["build"]["context"] / proxy["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert {int(mapping.rsplit(":", 1)[1]) for mapping in proxy["ports"]} == {listen, admin}
    assert all(mapping.startswith("127.0.0.1:") for s in services.values() for mapping in s.get("ports", []))
    mounts = {target: source for source, target, *_ in (v.split(":") for v in proxy["volumes"])}
    host_dir = DOCKER / mounts[str(config_in_container.parent)]
    assert host_dir / config_in_container.name == CONFIG
    # The uplink is the compose service, at Redis's port.
    assert data["uplink"]["addr"] == "redis:6379"


def test_compose_files_exist_and_the_secret_is_not_committed() -> None:
    spec = compose()
    for service in spec["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DOCKER / source).exists(), source
    secret_file = DOCKER / spec["secrets"]["admin_pass"]["file"]
    # Created by whoever runs it (compose.yaml's comment says how), never committed.
    ignored = subprocess.run(["git", "check-ignore", "-q", str(secret_file)], cwd=REPO_ROOT)
    assert ignored.returncode == 0, f"{secret_file} is not git-ignored"
    # Both the proxy and Prometheus read it, where the config and prometheus.yml say.
    in_container = "/run/secrets/admin_pass"
    assert example()["admin"]["pass_file"] == in_container
    assert spec["services"]["redis-proxy"]["secrets"] == ["admin_pass"]
    assert spec["services"]["prometheus"]["secrets"] == ["admin_pass"]
    job = prometheus()["scrape_configs"][0]
    assert job["basic_auth"]["password_file"] == in_container
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"redis-proxy:{tcp_port(example()['admin']['addr'])}"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(DOCKER / "prometheus.yml")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_healthcheck_and_scrape_against_the_real_proxy(
    redis_server: RedisServer, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    proxy = proxy_factory(localized(example(), redis_server.addr, tmp_path))
    admin = proxy.admin_url
    assert admin is not None

    def healthcheck(url: str) -> int:
        # The Dockerfile's own HEALTHCHECK command, with the URL the container's ENV would give it.
        command = healthcheck_command()
        assert command[0] == "python"
        run_env = dict(os.environ, REDIS_PROXY_HEALTHZ_URL=url)
        return subprocess.run([sys.executable, *command[1:]], env=run_env, capture_output=True, timeout=30).returncode

    assert healthcheck(f"{admin}/healthz") == 0
    assert healthcheck(f"http://127.0.0.1:{free_port()}/healthz") != 0  # nothing listening: unhealthy
    # Prometheus's scrape: /metrics needs the password, and the secret's content is it.
    assert get(f"{admin}/metrics")[0] == 401
    status, body = get(f"{admin}/metrics", password=PLACEHOLDER_PASSWORD)
    assert status == 200 and "redis_proxy_" in body
