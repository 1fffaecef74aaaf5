"""The keys clients may have written since a copy-mode migration started: what the next round copies again.

Sessions report marks (session/write_tracking.py) once the commands that
may have written them are answered; the migration takes the set a round
at a time. Plain data and sets, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis_proxy.migration.keyspecs import ALL_DBS, KeySpecs, Mark


@dataclass
class Dirty:
    """One round's work: keys per database, and databases to copy whole (their keys unknown)."""

    keys: dict[int, set[bytes]] = field(default_factory=dict)
    whole: set[int] = field(default_factory=set)
    all_dbs: bool = False  # an ALL_DBS mark: every database, whichever hold keys by then

    def __len__(self) -> int:
        return sum(map(len, self.keys.values()))

    @property
    def empty(self) -> bool:
        return not self.keys and not self.whole and not self.all_dbs


# Redis cannot list its script cache: the scripts clients load during the
# migration are all the proxy can carry over (at most this many).
MAX_SCRIPTS = 10_000
MAX_KEYS_PER_DB = 1_000_000  # beyond this many dirty keys in a database, it is copied whole instead
# Commands the key specifications alone do not cover (scripts to remember, PFCOUNT).
_SPECIAL = frozenset((b"SCRIPT", b"EVAL", b"EVAL_RO", b"EVALSHA", b"FCALL", b"PFCOUNT"))
_SPECIAL_ANY_CASE = _SPECIAL | frozenset(name.lower() for name in _SPECIAL)


class WriteTracker:
    def __init__(self, specs: KeySpecs, trust_script_keys: bool = True) -> None:
        self.specs = specs
        # False: every EVAL/EVALSHA/FCALL marks its whole database (scripts that write undeclared keys).
        self.trust_script_keys = trust_script_keys
        self.scripts: dict[bytes, None] = {}  # bodies, in the order seen
        self.dirty = Dirty()
        self.marked = 0  # marks received, for the events

    # -- what sessions call (Marks) -----------------------------------------------------------

    def writes(self, command: list[bytes], db: int) -> list[Mark] | None:
        found = self.specs.writes(command, db)
        name = command[0]
        if name in _SPECIAL_ANY_CASE or (not name.isupper() and not name.islower() and name.upper() in _SPECIAL):
            found = self._special(name.upper(), command, db, found)
        return found

    def _special(self, name: bytes, command: list[bytes], db: int, found: list[Mark] | None) -> list[Mark] | None:
        if name == b"PFCOUNT":
            # Flagged read-only, but it caches the count in the HyperLogLog: its DUMP changes.
            return [(db, key) for key in command[1:]]
        if name == b"SCRIPT" and len(command) == 3 and command[1].upper() == b"LOAD":
            self._remember(command[2])
        elif name in (b"EVAL", b"EVAL_RO") and len(command) > 1:
            self._remember(command[1])
        if not self.trust_script_keys and name in (b"EVAL", b"EVALSHA", b"FCALL"):
            return [(db, None)]  # a script may write keys it does not declare
        return found

    def _remember(self, body: bytes) -> None:
        """The bodies of scripts clients load (SCRIPT LOAD, EVAL): the target's script cache needs them."""
        if body not in self.scripts and len(self.scripts) < MAX_SCRIPTS:
            self.scripts[body] = None

    def mark(self, marks: list[Mark]) -> None:
        dirty = self.dirty
        self.marked += len(marks)
        for db, key in marks:
            if key is None:
                if db == ALL_DBS:
                    dirty.all_dbs = True
                else:
                    dirty.whole.add(db)
            else:
                keys = dirty.keys.get(db)
                if keys is None:
                    if db in dirty.whole:
                        continue  # copied whole anyway
                    keys = dirty.keys[db] = set()
                keys.add(key)
                if len(keys) > MAX_KEYS_PER_DB:  # memory stays bounded: the database is copied whole
                    del dirty.keys[db]
                    dirty.whole.add(db)

    # -- what the migration calls --------------------------------------------------------------

    def take(self) -> Dirty:
        taken, self.dirty = self.dirty, Dirty()
        return taken

    def mark_dirty(self, taken: Dirty) -> None:
        """Put back a round's work that was not finished."""
        dirty = self.dirty
        dirty.all_dbs |= taken.all_dbs
        dirty.whole |= taken.whole
        for db, keys in taken.keys.items():
            dirty.keys.setdefault(db, set()).update(keys)

    def __len__(self) -> int:
        return len(self.dirty)

    @property
    def needs_whole(self) -> bool:
        return self.dirty.all_dbs or bool(self.dirty.whole)
