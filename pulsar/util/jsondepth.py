"""How deeply JSON text nests, measured before it is decoded.

Python's JSON decoder recurses once per array/object level and raises `RecursionError`
somewhere below a thousand levels: not a `ValueError`, so a caller expecting bad JSON to be a
decode error meets an unexpected exception instead (a 500 over HTTP, a consumer that
reconnects forever over AMQP while the message is redelivered).  Both entry points check
the depth first and refuse the text as malformed.
"""

from __future__ import annotations

import re

#: Deepest nesting accepted.  Galaxy's deepest JSON (dependencies_description, a setup
#: message's parameters) nests about six levels.
MAX_NESTING = 100

_BRACKETS = re.compile(r"[\[\]{}]")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def nesting_depth(text: str) -> int:
    """The deepest nesting of JSON arrays/objects in `text`, brackets inside JSON strings
    not counted (an upper bound for text that is not JSON).  Linear, no recursion."""
    if "[" not in text and "{" not in text:
        return 0
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match.group(0) in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest
