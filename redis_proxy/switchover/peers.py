"""Other proxies in front of the same Redis (`peers`): paused before a promotion, switched after it.

Each peer is driven through its own admin API, as an operator would:
`pause-and-wait`, `switch to=NAME`, `unpause`. Requests to all peers run
at once, so a fleet is held no longer than its slowest member.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from redis_proxy.config import PeerConfig

REQUEST_TIMEOUT_S = 5.0  # a peer slower than this is as good as unreachable for a switchover


class PeerError(Exception):
    """A peer refused or could not be reached; the message names it."""


class Peer:
    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.url = config.url.rstrip("/")
        verify: Any = False if config.skipverify else (config.cacertfile or True)
        auth = ("admin", config.password) if config.password is not None else None
        self.http = httpx.AsyncClient(base_url=self.url, auth=auth, verify=verify, timeout=REQUEST_TIMEOUT_S)
        self.paused = False  # we paused it and have not unpaused it yet

    async def command(self, cmd: str, **fields: str) -> dict[str, Any]:
        try:
            response = await self.http.post("/cmd/", data={"cmd": cmd, **fields})
        except httpx.HTTPError as exc:
            raise PeerError(f"peer {self.url}: {cmd} failed: {exc or type(exc).__name__}") from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or not body.get("ok"):
            reason = body.get("error") or response.text[:200]
            raise PeerError(f"peer {self.url}: {cmd} refused ({response.status_code}): {reason}")
        return body

    async def info(self) -> dict[str, Any]:
        try:
            response = await self.http.get("/info.json")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PeerError(f"peer {self.url}: info.json failed: {exc or type(exc).__name__}") from None
        return body

    async def close(self) -> None:
        await self.http.aclose()


class Peers:
    def __init__(self, configs: list[PeerConfig]) -> None:
        self.peers = [Peer(config) for config in configs]

    def __bool__(self) -> bool:
        return bool(self.peers)

    async def check(self, source_addr: str, target: str) -> list[str]:
        """Preflight: each peer answers, serves the same uplink as we do and knows the target by name."""

        async def one(peer: Peer) -> str:
            info = await peer.info()
            uplinks = (info.get("config") or {}).get("uplinks") or {}
            if info.get("uplink") != source_addr:
                raise PeerError(f"peer {peer.url} is on uplink {info.get('uplink')}, not {source_addr}")
            if target not in uplinks:
                raise PeerError(f"peer {peer.url} has no uplink named {target!r}")
            return f"peer {peer.url} ready"

        return list(await asyncio.gather(*(one(peer) for peer in self.peers)))

    async def pause(self, timeout_ms: int, expire_ms: int) -> None:
        """pause-and-wait on every peer at once; if one fails, all are unpaused and PeerError says why.

        Each pause ends by itself after `expire_ms`: a leader that dies
        mid-switchover cannot leave its peers paused.
        """

        async def one(peer: Peer) -> None:
            peer.paused = True  # a pause may take effect even when its reply is lost
            await peer.command("pause-and-wait", timeout_ms=str(timeout_ms), expire_ms=str(expire_ms))

        results = await asyncio.gather(*(one(peer) for peer in self.peers), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.unpause()
            raise PeerError("; ".join(str(e) for e in errors))

    async def all_paused(self) -> None:
        """Just before the promotion: every peer is still paused (its pause could have expired); PeerError if not."""

        async def one(peer: Peer) -> None:
            state = (await peer.info()).get("state_str")
            if state != "paused":
                raise PeerError(f"peer {peer.url} is {state}, no longer paused")

        await asyncio.gather(*(one(peer) for peer in self.peers))

    async def unpause(self) -> list[str]:
        """Unpause every peer we paused; the problems (never raised: this runs on the way out)."""

        async def one(peer: Peer) -> None:
            await peer.command("unpause")
            peer.paused = False

        paused = [peer for peer in self.peers if peer.paused]
        results = await asyncio.gather(*(one(peer) for peer in paused), return_exceptions=True)
        return [str(r) for r in results if isinstance(r, BaseException)]

    async def switch(self, target: str, attempts: int = 3) -> list[str]:
        """After the promotion: switch every peer to `target`, then unpause it; the problems, one per peer.

        There is no way back after a promotion, so each peer is retried; a
        peer that still cannot switch is unpaused anyway (its writes then go
        to the fenced old server, which refuses them) and named.
        """

        async def one(peer: Peer) -> str | None:
            problem = None
            for attempt in range(attempts):
                try:
                    await peer.command("switch", to=target)
                    problem = None
                    break
                except PeerError as exc:
                    problem = str(exc)
                    await asyncio.sleep(0.2 * (attempt + 1))
            try:
                await peer.command("unpause")
                peer.paused = False
            except PeerError as exc:
                problem = f"{problem}; {exc}" if problem else str(exc)
            return problem

        results = await asyncio.gather(*(one(peer) for peer in self.peers))
        return [r for r in results if r]

    async def close(self) -> None:
        await asyncio.gather(*(peer.close() for peer in self.peers), return_exceptions=True)
