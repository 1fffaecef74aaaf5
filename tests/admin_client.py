"""A small HTTP client for the admin app of a ProxyProcess (used by tests/admin)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from servers import ProxyProcess


class AdminClient:
    """httpx against one proxy's admin URL; redirects are not followed, so tests see them."""

    def __init__(
        self,
        proxy: ProxyProcess,
        *,
        url: str | None = None,
        auth: tuple[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        base = url or proxy.admin_url
        assert base is not None, "the proxy has no admin address"
        self.proxy = proxy
        self.url = base.rstrip("/")
        self.http = httpx.Client(base_url=self.url, auth=auth, verify=verify, timeout=20.0, follow_redirects=False)

    def cmd(self, cmd: str | None = None, **fields: Any) -> httpx.Response:
        """POST /cmd/ as a urlencoded form, like `curl -d cmd=...`."""
        data = {k: str(v) for k, v in fields.items()}
        if cmd is not None:
            data["cmd"] = cmd
        return self.http.post("/cmd/", data=data)

    def ok(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Run a command that must succeed; its JSON reply."""
        response = self.cmd(cmd, **fields)
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = response.json()
        assert body["ok"] is True, body
        return body

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def info(self) -> dict[str, Any]:
        response = self.http.get("/info.json")
        assert response.status_code == 200, (response.status_code, response.text)
        data: dict[str, Any] = response.json()
        return data

    def close(self) -> None:
        self.http.close()
