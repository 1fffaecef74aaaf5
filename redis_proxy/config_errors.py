"""Turning pydantic's validation errors and JSON quirks into one readable line per config problem.

Kept apart from the schema (`redis_proxy.config`) so the schema reads as the
list of keys it is. Inputs are never echoed: they may be passwords.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

_SIMPLE_MESSAGES = {
    "missing": "field required",
    "extra_forbidden": "unknown key",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _SIMPLE_MESSAGES:
        return _SIMPLE_MESSAGES[kind]
    if kind == "greater_than_equal":
        return f"must be >= {error['ctx']['ge']}"
    # Fallback: pydantic's own wording, which never includes the input value.
    msg = str(error["msg"]).replace("Input should be", "must be").replace("\n", " ")
    return msg[:1].lower() + msg[1:]


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside a field's annotation (`ListenRawConfig | None` -> ListenRawConfig)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model = _section_model(arg)
            if model is not None:
                return model
    return None


def _known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a config file may use in the object at `loc` (file names: "pass", not "password")."""
    model: type[BaseModel] | None = root
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        if typing.get_origin(annotation) is dict and parts:
            parts.pop(0)  # uplinks.NAME: the name is any key, the entry a section
            annotation = typing.get_args(annotation)[1]
        model = _section_model(annotation)
        if model is None:
            return []
    assert model is not None
    return [field.alias or name for name, field in model.model_fields.items()]


def _unknown_key_message(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """"unknown key", with the closest known key when one is close enough to be a typo."""
    if not loc:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), _known_keys(root, loc[:-1]), n=1, cutoff=0.6)
    return f'unknown key (did you mean "{close[0]}"?)' if close else "unknown key"


def translate(root: type[BaseModel], exc: ValidationError, source: str, named_uplink: bool = False) -> list[str]:
    """One line per problem, "key.path: what is wrong"."""
    problems: list[str] = []
    # include_input=False: inputs may be passwords and must never be shown.
    for error in exc.errors(include_url=False, include_input=False):
        if named_uplink and error["loc"][:1] == ("uplink",):
            continue  # the named entry's own problems are reported under uplinks.NAME
        path = ".".join(str(part) for part in error["loc"])
        if path == "uplink" and error["type"] == "model_type":
            problems.append("uplink: must be a JSON object or the name of an entry in uplinks")
            continue
        if error["type"] == "config_rules":
            prefix = f"{path}." if path else ""
            problems.extend(f"{prefix}{field}: {msg}" for field, msg in error["ctx"]["problems"])
        elif error["type"] == "extra_forbidden":
            problems.append(f"{path or source}: {_unknown_key_message(root, tuple(error['loc']))}")
        else:
            problems.append(f"{path or source}: {_message(error)}")
    return problems


class JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers keys that appeared twice."""

    duplicates: list[str]


def object_hook(pairs: list[tuple[str, Any]]) -> JSONObject:
    obj = JSONObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def duplicate_problems(value: Any, path: str) -> list[str]:
    # json.loads silently keeps the last duplicate; in a config file that
    # hides mistakes (two "addr" keys), so report them instead.
    problems: list[str] = []
    if isinstance(value, JSONObject):
        prefix = f"{path}." if path else ""
        problems.extend(f"{prefix}{key}: duplicate key" for key in value.duplicates)
        for key, child in value.items():
            problems.extend(duplicate_problems(child, f"{prefix}{key}"))
    return problems
