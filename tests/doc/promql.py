"""Just enough PromQL to find what the dashboard and the alerts query: metric names, label matchers, grouping labels.

Not a parser: the expressions are ours, and a test that fails on a
construct this does not know is told so (an unknown identifier fails
loudly as a metric that does not exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Words that are not metric names where they stand outside a selector.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")


@dataclass
class Query:
    metrics: set[str] = field(default_factory=set)
    # (metric, label, value) for each `label="value"` matcher without a template variable in it.
    matchers: set[tuple[str, str, str]] = field(default_factory=set)
    grouping: set[str] = field(default_factory=set)  # labels of by (...), without (...), on (...)


def parse(expr: str) -> Query:
    query = Query()
    text = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries: [5m], [$__rate_interval]
    text = re.sub(r"\boffset\s+\S+", " ", text)
    for match in _GROUPING.finditer(text):
        query.grouping.update(label.strip() for label in match.group(1).split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    for match in _SELECTOR.finditer(text):
        for label, op, value in _MATCHER.findall(match.group(2)):
            if op == "=" and "$" not in value:
                query.matchers.add((match.group(1), label, value))
    text = re.sub(r"\{[^}]*\}", " ", text)  # selectors' matchers (their names stay)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)  # string arguments (label_replace...)
    for name in _IDENTIFIER.findall(text):
        if name.lower() not in KEYWORDS:
            query.metrics.add(name)
    return query
