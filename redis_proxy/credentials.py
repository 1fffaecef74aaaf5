"""A client's own credentials in AUTH pass-through mode (`listen.auth: "passthrough"`).

Redis accepted them (AUTH or HELLO ... AUTH answered without an error); the
session keeps them in memory only, to authenticate a new uplink connection
(after a switch or a reconnect) as the same ACL user. The password is never
shown: not in repr() or str(), logs or the admin app. The user name may be
shown (verify reports users missing on a target server by name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Credentials:
    user: bytes | None  # None: `AUTH <password>`, which is the default user
    password: bytes = field(repr=False)

    @property
    def user_name(self) -> str:
        """The ACL user these credentials are for ("default" for `AUTH <password>`)."""
        return (self.user if self.user is not None else b"default").decode(errors="replace")

    def auth_command(self) -> list[bytes]:
        """AUTH as the client sent it (a one-argument AUTH stays one: Redis before 6 knows no user names)."""
        if self.user is None:
            return [b"AUTH", self.password]
        return [b"AUTH", self.user, self.password]

    def password_digest(self) -> str:
        """The password's SHA-256 in hex, as ACL GETUSER lists a user's passwords: compared, never the password."""
        return hashlib.sha256(self.password).hexdigest()

    def __repr__(self) -> str:
        return f"Credentials(user={self.user_name!r}, password=[hidden])"

    __str__ = __repr__
