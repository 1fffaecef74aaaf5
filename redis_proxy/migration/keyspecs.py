"""Which keys a client command may write, learnt from the source server's own `COMMAND` reply.

Every client command of a live copy-mode migration is checked here, so the reply is
compiled once into one small handler per writing command: per command, a dict lookup
and a slice or two; read-only and keyless commands cost the lookup alone.

Key positions follow Redis's key specifications (Redis 7: the docs' "Command key
specifications" and getKeysUsingKeySpecs in db.c), or a Redis 6 reply's first/last/step.
Where the reply cannot say which keys are written, the answer widens to the whole
database: more keys only cost copying, a missed written key loses a write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

ALL_DBS: int = -1  # in a whole-database mark: every database

Mark = tuple[int, bytes | None]  # (db, key); key None: the whole database may have changed
Writes = list[Mark]
# What one command name compiles to: (argv, selected db) -> writes, or None for nothing.
_Handler = Callable[[list[bytes], int], Writes | None]
# Finds one key spec's keys in argv.
_Finder = Callable[[list[bytes]], list[bytes]]


class Refused(Exception):
    """For a caller that refuses untrackable commands; writes() never raises it (it widens to whole databases)."""


@dataclass(frozen=True)
class KeySpecs:
    """The writers of one server, keyed by command name in lower and upper case."""

    table: dict[bytes, _Handler | None]

    @classmethod
    def parse(cls, command_reply: list[Any]) -> KeySpecs:
        """Compile the raw RESP2 reply of `COMMAND` (as hiredis parses it)."""
        table: dict[bytes, _Handler | None] = {}
        for entry in command_reply:
            _put(table, _bytes(entry[0]).lower(), _compile(entry))
        return cls(table)

    def writes(self, command: list[bytes], db: int) -> Writes | None:
        """What `command`, sent by a client whose selected database is `db`, may write.

        None: nothing (a read-only or keyless command: the common case, make it fast).
        Otherwise (db, key) pairs, possibly repeated; (db, None) means 'the whole
        database db may have changed, keys unknown'; (ALL_DBS, None) means every database.
        """
        # Clients send names in lower or upper case, both stored: one lookup.
        try:
            handler = self.table[command[0]]
        except KeyError:
            handler = self.table.get(command[0].lower())  # mixed case, or unknown
        except IndexError:
            return None
        if handler is None:
            return None
        return handler(command, db)


def _put(table: dict[bytes, _Handler | None], name: bytes, handler: _Handler | None) -> None:
    table[name] = handler
    table[name.upper()] = handler


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _pairs(flat: Any) -> dict[bytes, Any]:
    """A RESP2 flat [name, value, ...] array (or an already-built RESP3 map) as a dict."""
    if isinstance(flat, dict):
        return {_bytes(k): v for k, v in flat.items()}
    return {_bytes(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _db_index(arg: bytes) -> int | None:
    # Redis refuses a negative or non-numeric index, so such a command writes nothing.
    return int(arg) if arg.isdigit() else None


# -- commands whose writes the key specs cannot describe -----------------------

def _whole_db(command: list[bytes], db: int) -> Writes | None:
    return [(db, None)]


def _swapdb(command: list[bytes], db: int) -> Writes | None:
    dbs = [index for index in map(_db_index, command[1:3]) if index is not None]
    return [(dbs[0], None), (dbs[1], None)] if len(dbs) == 2 else None


def _move(command: list[bytes], db: int) -> Writes | None:
    if len(command) < 2:
        return None
    target = _db_index(command[2]) if len(command) > 2 else None
    return [(db, command[1])] if target is None else [(db, command[1]), (target, command[1])]


def _copy(command: list[bytes], db: int) -> Writes | None:
    # COPY src dst [DB n] [REPLACE]: only dst is written, in db n if given (the last DB wins, as in Redis).
    if len(command) < 3:
        return None
    target: int | None = db
    i = 3
    while i < len(command):
        if command[i].lower() == b"db" and i + 1 < len(command):
            target = _db_index(command[i + 1])
            i += 1
        i += 1
    return None if target is None else [(target, command[2])]


def _script(command: list[bytes], db: int) -> Writes | None:
    # EVAL/EVALSHA/FCALL body numkeys key...: scripts are trusted to declare what they write
    # (as Redis Cluster requires), so only a script declaring no key may write anything.
    if len(command) < 3 or not command[2].isdigit():
        return None  # Redis refuses a missing, negative or non-numeric numkeys
    count = int(command[2])
    if count == 0:
        return [(db, None)]
    return [(db, key) for key in command[3 : 3 + count]] or None


def _sort(command: list[bytes], db: int) -> Writes | None:
    # SORT key ... STORE dst: key is only read. The STORE spec is of type unknown; taking
    # every argument after a STORE word is a superset of what sortCommand stores into.
    stores: Writes = [(db, command[i + 1]) for i in range(2, len(command) - 1) if command[i].lower() == b"store"]
    return stores or None


def _migrate(command: list[bytes], db: int) -> Writes | None:
    # MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS key...]
    # deletes its keys here. The KEYS spec is incomplete (a password may read "KEYS"): all after
    # the first KEYS word is a superset. COPY is ignored for the same reason.
    keys = [command[3]] if len(command) > 3 and command[3] else []
    for i in range(6, len(command)):
        if command[i].upper() == b"KEYS":
            keys.extend(command[i + 1 :])
            break
    return [(db, key) for key in keys] or None


def _debug(command: list[bytes], db: int) -> Writes | None:
    # Keyless, but DEBUG POPULATE creates keys and a few subcommands reload the dataset from disk.
    sub = command[1].lower() if len(command) > 1 else b""
    if sub in (b"reload", b"loadaof", b"restart", b"crash-and-recover"):
        return [(ALL_DBS, None)]
    return [(db, None)] if sub == b"populate" else None


# By lower-case full name. None: the caller handles it (transactions, SELECT).
_SPECIAL: dict[bytes, _Handler | None] = {
    b"flushdb": _whole_db,
    b"flushall": lambda command, db: [(ALL_DBS, None)],
    b"swapdb": _swapdb,
    b"move": _move,
    b"copy": _copy,
    b"sort": _sort,
    b"migrate": _migrate,
    b"debug": _debug,
    **dict.fromkeys((b"eval", b"evalsha", b"fcall"), _script),
    # WATCH is not flagged readonly, yet only reads its keys.
    **dict.fromkeys((b"multi", b"exec", b"discard", b"watch", b"select"), None),
}


# -- compiling the reply ---------------------------------------------------------

def _compile(entry: list[Any]) -> _Handler | None:
    """One command (or subcommand) entry of the reply as a handler; None if it writes nothing."""
    subcommands = entry[9] if len(entry) > 9 else []
    if subcommands:
        table: dict[bytes, _Handler | None] = {}
        for sub in subcommands:
            # Subcommands are named "container|sub"; argv[1] carries only "sub".
            _put(table, _bytes(sub[0]).lower().partition(b"|")[2], _compile(sub))
        return _container(table) if any(table.values()) else None
    name = _bytes(entry[0]).lower()
    if name in _SPECIAL:
        return _SPECIAL[name]
    flags = {_bytes(flag).lower() for flag in entry[2]}
    if b"readonly" in flags:
        return None
    first_key, last_key, step = int(entry[3]), int(entry[4]), int(entry[5])
    if len(entry) < 9:  # Redis 6: the legacy triple only
        if b"movablekeys" in flags:
            return _whole_db
        if first_key <= 0:
            return None
        return _keys([slice(first_key, last_key + 1 if last_key >= 0 else last_key + 1 or None, max(step, 1))])
    if not entry[8]:
        # A module command may declare keys without specs: positions unknown.
        return _whole_db if first_key > 0 or b"movablekeys" in flags else None
    # not_key specs name shard channels (SPUBLISH), not keys.
    specs = [spec for spec in map(_pairs, entry[8]) if b"not_key" not in _spec_flags(spec)]
    if not specs:
        return None
    # Skip the keys a spec says are only read. If that leaves nothing, the
    # command is flagged a writer anyway (XREADGROUP writes its consumer group
    # into a key its spec calls RO), so trust the command flag over the specs.
    specs = [spec for spec in specs if not _read_only(spec)] or specs
    finders = [_finder(spec) for spec in specs]
    if any(finder is None for finder in finders):
        return _whole_db
    return _keys([finder for finder in finders if finder is not None])


def _spec_flags(spec: dict[bytes, Any]) -> set[bytes]:
    return {_bytes(flag) for flag in spec.get(b"flags", [])}


def _read_only(spec: dict[bytes, Any]) -> bool:
    flags = _spec_flags(spec)
    return b"RO" in flags and not flags & {b"RW", b"OW", b"RM", b"variable_flags"}


def _finder(spec: dict[bytes, Any]) -> slice | _Finder | None:
    """The finder of one key spec; None where it cannot name every key (type unknown, incomplete)."""
    if b"incomplete" in _spec_flags(spec):
        return None
    try:
        begin, find = _pairs(spec[b"begin_search"]), _pairs(spec[b"find_keys"])
        begin_type, begin_spec = _bytes(begin[b"type"]), _pairs(begin[b"spec"])
        find_type, find_spec = _bytes(find[b"type"]), _pairs(find[b"spec"])
        step = max(int(find_spec[b"keystep"]), 1)
        if find_type == b"range":
            lastkey, limit = int(find_spec[b"lastkey"]), int(find_spec[b"limit"])
            if begin_type == b"index" and (lastkey >= 0 or limit <= 1):
                first = int(begin_spec[b"index"])
                # A fixed slice: argv[first .. first+lastkey], or up to argc+lastkey.
                stop = first + lastkey + 1 if lastkey >= 0 else lastkey + 1 or None
                return slice(first, stop, step)
            found = _range(lastkey, limit, step)
        elif find_type == b"keynum":
            found = _keynum(int(find_spec[b"keynumidx"]), int(find_spec[b"firstkey"]), step)
        else:
            return None
        if begin_type == b"index":
            index = int(begin_spec[b"index"])
            return lambda argv: found(argv, index)
        if begin_type == b"keyword":
            return _at_keyword(_bytes(begin_spec[b"keyword"]).upper(), int(begin_spec[b"startfrom"]), found)
    except (KeyError, TypeError, ValueError, IndexError):
        pass  # a spec shape this code does not know
    return None


_Found = Callable[[list[bytes], int], list[bytes]]  # (argv, first index) -> keys


def _range(lastkey: int, limit: int, step: int) -> _Found:
    def found(argv: list[bytes], first: int) -> list[bytes]:
        if lastkey >= 0:
            return argv[first : first + lastkey + 1 : step]
        if limit <= 1:  # a negative stop counts from the end, as lastkey does
            return argv[first : lastkey + 1 or None : step]
        # lastkey is -1 here: the keys are the first 1/limit of the remaining args.
        return argv[first : first + (len(argv) - first) // limit + lastkey + 1 : step]

    return found


def _keynum(keynumidx: int, firstkey: int, step: int) -> _Found:
    def found(argv: list[bytes], first: int) -> list[bytes]:
        at = first + keynumidx
        if at >= len(argv) or not argv[at].isdigit():
            return []  # Redis refuses a missing or non-numeric count
        start = first + firstkey
        # Redis counts numkeys in argument positions; counting keys spans more, safely.
        return argv[start : start + int(argv[at]) * step : step]

    return found


def _at_keyword(keyword: bytes, startfrom: int, found: _Found) -> _Finder:
    def finder(argv: list[bytes]) -> list[bytes]:
        # As Redis: forwards from startfrom, or backwards from argc+startfrom down to argv[2].
        last = len(argv) - 1
        for i in range(startfrom, last) if startfrom > 0 else range(min(last + 1 + startfrom, last), 1, -1):
            if argv[i].upper() == keyword:
                return found(argv, i + 1)
        return []

    return finder


def _keys(parts: list[slice | _Finder]) -> _Handler:
    """The handler returning every key the finders (or fixed slices of argv) find, in the client's database."""
    if len(parts) == 1 and isinstance(parts[0], slice) and parts[0].stop == parts[0].start + 1:
        index: int = parts[0].start  # SET, INCR, HSET, EXPIRE...: most writes name one key

        def one_key(argv: list[bytes], db: int) -> Writes | None:
            return [(db, argv[index])] if len(argv) > index else None

        return one_key
    finders = [itemgetter(part) if isinstance(part, slice) else part for part in parts]

    def keys(argv: list[bytes], db: int) -> Writes | None:
        return [(db, key) for finder in finders for key in finder(argv)] or None

    return keys


def _container(subcommands: dict[bytes, _Handler | None]) -> _Handler:
    def handler(argv: list[bytes], db: int) -> Writes | None:
        if len(argv) < 2:
            return None
        try:
            sub = subcommands[argv[1]]
        except KeyError:
            sub = subcommands.get(argv[1].lower())
        return None if sub is None else sub(argv, db)

    return handler
