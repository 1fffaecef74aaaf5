"""packaging/kubernetes/: the manifests against what the proxy really serves.

The probes, ports and config the manifests name are resolved the way the
kubelet would (named ports, volume mounts, ConfigMap keys) and checked
against the ConfigMap's config.json as the proxy's own loader reads it; then
that config is run as a real proxy and the probe paths are fetched over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from deployed import PLACEHOLDER_PASSWORD, REPO_ROOT, get, localized, tcp_port
from redis_proxy.admin.auth import PROBE_PATHS
from redis_proxy.config import load_config
from servers import ProxyProcess, RedisServer

KUBERNETES = REPO_ROOT / "packaging" / "kubernetes"
ProxyFactory = Callable[..., ProxyProcess]


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def image_entrypoint() -> list[str]:
    for line in (REPO_ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            return list(json.loads(line.removeprefix("ENTRYPOINT ")))
    raise AssertionError("docker/Dockerfile has no ENTRYPOINT")


def image_uid() -> int:
    for line in (REPO_ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("USER "):
            return int(line.split()[1].split(":")[0])
    raise AssertionError("docker/Dockerfile has no USER")


@dataclass
class ProxyPod:
    """One redis-proxy container and what it references, resolved."""

    deployment: dict[str, Any]
    container: dict[str, Any]
    config: dict[str, Any]  # config.json from the ConfigMap

    @property
    def pod(self) -> dict[str, Any]:
        return dict(self.deployment["spec"]["template"]["spec"])

    def port(self, ref: int | str) -> int:
        """A port reference (number, or the name of one of the container's ports) as a number."""
        if isinstance(ref, int):
            return ref
        ports = {p["name"]: p["containerPort"] for p in self.container.get("ports", [])}
        assert ref in ports, f"no container port named {ref!r}"
        return int(ports[ref])

    def mounted(self, path: str) -> tuple[dict[str, Any], str]:
        """The pod volume a file path lies in, and the key (file name) within it."""
        file = PurePosixPath(path)
        for mount in self.container["volumeMounts"]:
            if file.parent == PurePosixPath(mount["mountPath"]):
                volumes = {v["name"]: v for v in self.pod["volumes"]}
                return volumes[mount["name"]], file.name
        raise AssertionError(f"{path} is in no volume the container mounts")


def proxy_pods() -> Iterator[ProxyPod]:
    entrypoint = image_entrypoint()
    for deployment in of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if not container["image"].startswith("redis-proxy:"):
                continue
            assert "command" not in container and "args" not in container  # the image's ENTRYPOINT
            pod = ProxyPod(deployment, container, {})
            volume, key = pod.mounted(entrypoint[entrypoint.index("-f") + 1])
            pod.config = json.loads(named("ConfigMap", volume["configMap"]["name"])["data"][key])
            yield pod


PODS = {f"{pod.deployment['metadata']['name']}/{pod.container['name']}": pod for pod in proxy_pods()}


def test_every_kind_is_there() -> None:
    assert {doc["kind"] for doc in documents()} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    assert set(PODS) == {"redis-proxy/redis-proxy", "my-app/redis-proxy"}
    sidecar = named("Deployment", "my-app")["spec"]["template"]["spec"]
    assert sidecar["initContainers"][0]["restartPolicy"] == "Always"  # a native sidecar
    assert [c["name"] for c in sidecar["containers"]] == ["app"]


@pytest.mark.parametrize("name", sorted(PODS))
def test_the_config_loads_with_an_admin_password_from_the_secret(name: str, tmp_path: Path) -> None:
    pod = PODS[name]
    pass_file = pod.config["admin"]["pass_file"]
    assert "pass" not in pod.config["admin"]  # no password in a ConfigMap
    volume, key = pod.mounted(pass_file)
    assert "secret" in volume, f"{pass_file} is not in a Secret volume"
    assert key == "admin-pass" and volume["secret"]["secretName"] == "redis-proxy-admin"
    # The proxy's own loader, with the Secret's file where this machine has it.
    (tmp_path / key).write_text(PLACEHOLDER_PASSWORD)
    data = json.loads(json.dumps(pod.config))
    data["admin"]["pass_file"] = key
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = load_config(str(tmp_path / "config.json"))
    assert config.admin is not None and config.admin.password == PLACEHOLDER_PASSWORD


@pytest.mark.parametrize("name", sorted(PODS))
def test_probes_and_ports_match_the_config(name: str) -> None:
    pod = PODS[name]
    admin_port = tcp_port(pod.config["admin"]["addr"])
    # The kubelet probes the pod's IP: the admin app must listen on all addresses.
    assert pod.config["admin"]["addr"].startswith("0.0.0.0:")
    probes = {kind: pod.container[kind] for kind in ("livenessProbe", "readinessProbe", "startupProbe") if kind in pod.container}
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind, probe in probes.items():
        assert probe["httpGet"]["path"] in PROBE_PATHS, f"{kind}: the probe has no password to give"
        assert pod.port(probe["httpGet"]["port"]) == admin_port, kind
        assert probe["httpGet"].get("scheme", "HTTP") == ("HTTPS" if pod.config["admin"].get("tls") else "HTTP")
    declared = {p["containerPort"] for p in pod.container["ports"]}
    assert admin_port in declared
    listen = pod.config["listen"]["addr"]
    if listen.startswith("127.0.0.1:"):
        assert tcp_port(listen) not in declared  # a sidecar's listener is for its pod only
    else:
        assert listen.startswith("0.0.0.0:") and tcp_port(listen) in declared


@pytest.mark.parametrize("name", sorted(PODS))
def test_runs_as_the_images_non_root_user(name: str) -> None:
    pod = PODS[name]
    context = {**pod.pod.get("securityContext", {}), **pod.container.get("securityContext", {})}
    assert context["runAsNonRoot"] is True and context["runAsUser"] == image_uid()
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True


def test_service_and_budget_select_the_proxy() -> None:
    pod = PODS["redis-proxy/redis-proxy"]
    labels = pod.deployment["spec"]["template"]["metadata"]["labels"]
    service = named("Service", "redis-proxy")
    assert service["spec"]["selector"].items() <= labels.items()
    targets = {p["name"]: pod.port(p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {"redis": tcp_port(pod.config["listen"]["addr"]), "admin": tcp_port(pod.config["admin"]["addr"])}
    budget = named("PodDisruptionBudget", "redis-proxy")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < pod.deployment["spec"]["replicas"]


@pytest.mark.parametrize("name", sorted(PODS))
def test_the_probe_paths_answer_on_a_real_proxy(
    name: str, redis_server: RedisServer, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    pod = PODS[name]
    proxy = proxy_factory(localized(pod.config, redis_server.addr, tmp_path))
    admin = proxy.admin_url
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in pod.container:
            path = pod.container[kind]["httpGet"]["path"]
            assert get(f"{admin}{path}") == (200, "ok\n" if path == "/healthz" else "ready\n"), kind
    assert get(f"{admin}/metrics")[0] == 401  # the rest of the admin app has a password
    assert proxy.client().ping()
