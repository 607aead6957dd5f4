"""A tool's `<command_validator>`: the shape its command line must have, as a regular expression.

Why: a tool allow-list alone lets a client run anything under a listed tool's name, since the
command line is the client's.  A tool's XML can say what its command lines look like; the
server then runs only command lines of that shape, with paths that stay in the job's own
`inputs/`, `outputs/`, `tool_files/` and `configs/` directories.

The element's children are matched in order against the whole command line (leading and
trailing white space ignored), one or more blanks (spaces, tabs; never a newline) between two:

* `<literal value="V"/>` -- exactly the text V;
* `<regex value="R"/>` -- a Python regular expression R (an admin's, trusted);
* `<integer/>`, `<float/>` -- a decimal number (the float's fraction and exponent optional);
* `<tool_wrapper name="N"/>` -- the absolute path of `tool_files/N` of this job;
* `<configfile name="N"/>` -- the absolute path of `configs/N` of this job; it also lets the
  client upload a config file named N (config files the validator does not name are refused);
* `<input/>`, `<output/>` -- an absolute path below the job's `inputs/` or `outputs/`: each
  component of letters, digits, `_`, `-`, `.`, not starting with a dot (so no `..`);
* `<single_quote>...</single_quote>`, `<double_quote>...</double_quote>` -- the children,
  enclosed in `'` or `"`;
* `<optional>...</optional>` -- the children, or nothing at all.

`literal`, `regex`, `tool_wrapper`, `configfile`, `input` and `output` are the reference's
elements (checked against the reference 0.16.0), with its meaning but stricter: it let
`<output/>` be followed by `; touch ...` and accepted `..` in an `<input/>` path.  `integer`,
`float`, the quote groups and `optional` are ours; the reference's `<parameter>` (whose
meaning differs) and its `separate_by` attribute are not supported.  Anything else in the element -- an unknown
element or attribute, a missing or unusable attribute -- is a configuration error, so no part
of a validator is silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Sequence

from pulsar import protocol

#: One path component a generated path may use below inputs/ or outputs/.
_COMPONENT = r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*"
#: Between two elements: blanks only.  A newline or `;` would start another shell command.
_SEP = r"[ \t]+"
_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class ValidatorError(ValueError):
    """The `<command_validator>` element cannot be used; the message says which part."""


@dataclasses.dataclass(frozen=True)
class _Element:
    """One parsed child: its tag, its attributes, its children (for groups)."""

    tag: str
    attributes: dict[str, str]
    children: tuple["_Element", ...] = ()


_LEAVES = {"literal": ("value",), "regex": ("value",), "integer": (), "float": (), "tool_wrapper": ("name",),
           "configfile": ("name",), "input": (), "output": ()}
_GROUPS = ("single_quote", "double_quote", "optional")


def _parse(element: Any) -> _Element:
    tag = element.tag
    if not isinstance(tag, str):  # a comment or processing instruction
        raise ValidatorError("only elements may appear in <command_validator>")
    attributes = {str(k): str(v) for k, v in element.attrib.items()}
    unknown = sorted(set(attributes) - set(_LEAVES.get(tag, ())))
    if unknown and (tag in _LEAVES or tag in _GROUPS):
        raise ValidatorError(f"<{tag}> has no attribute {', '.join(unknown)}")
    if tag in _LEAVES:
        for name in _LEAVES[tag]:
            if not attributes.get(name):
                raise ValidatorError(f"<{tag}> needs a non-empty {name!r} attribute")
        if tag in ("tool_wrapper", "configfile") and not re.fullmatch(_COMPONENT, attributes["name"]):
            raise ValidatorError(f"<{tag} name={attributes['name']!r}> must name a plain file name")
        if tag == "regex":
            try:
                re.compile(attributes["value"])
            except re.error as exc:
                raise ValidatorError(f"<regex value={attributes['value']!r}> is not a regular expression: {exc}") from None
        if len(element):
            raise ValidatorError(f"<{tag}> takes no child elements")
        return _Element(tag, attributes)
    if tag in _GROUPS:
        children = tuple(_parse(child) for child in element)
        if not children:
            raise ValidatorError(f"<{tag}> needs at least one child element")
        return _Element(tag, attributes, children)
    raise ValidatorError(f"unknown element <{tag}> (known: {', '.join([*_LEAVES, *_GROUPS])})")


class CommandValidator:
    """The parsed `<command_validator>` of one tool; `matches` checks a job's command line."""

    def __init__(self, element: Any):
        """`element`: the `<command_validator>` element (ElementTree API).  Raises
        `ValidatorError` for anything this module does not define (see the module doc)."""
        self._children = tuple(_parse(child) for child in element)
        self.configfiles = frozenset(e.attributes["name"] for e in _walk(self._children) if e.tag == "configfile")

    def pattern(self, job_directory: Path) -> re.Pattern[str]:
        """The expression a command line of the job in `job_directory` must match in full."""
        body = _sequence(self._children, job_directory)
        return re.compile(r"[ \t]*" + body + r"[ \t]*")

    def matches(self, command_line: str, job_directory: Path) -> bool:
        """True if `command_line` has the shape the validator describes for this job.  A
        space is appended so an optional group at the end can take its separator."""
        return self.pattern(job_directory).fullmatch(command_line.strip() + " ") is not None


def _walk(elements: Sequence[_Element]) -> list[_Element]:
    found: list[_Element] = []
    for element in elements:
        found.append(element)
        found.extend(_walk(element.children))
    return found


def _sequence(children: Sequence[_Element], job: Path) -> str:
    """Children separated by blanks.  An optional group after a required element takes its
    separator in front (`(?: X)?`), one before any required element behind (`(?:X )?`), so
    leaving it out never leaves two separators or none."""
    out = ""
    after_required = False
    for child in children:
        text = _render(child, job)
        if child.tag == "optional":
            out += f"(?:{_SEP}{text})?" if after_required else f"(?:{text}{_SEP})?"
        else:
            out += (_SEP if after_required else "") + f"(?:{text})"
            after_required = True
    return out


def _below(directory: Path) -> str:
    return re.escape(str(directory)) + "/" + _COMPONENT + "(?:/" + _COMPONENT + ")*"


def _render(element: _Element, job: Path) -> str:
    tag, attributes = element.tag, element.attributes
    if tag == "literal":
        return re.escape(attributes["value"])
    if tag == "regex":
        return attributes["value"]
    if tag == "integer":
        return r"[-+]?\d+"
    if tag == "float":
        return _FLOAT
    if tag == "tool_wrapper":
        return re.escape(str(job / protocol.TOOL_FILES_DIR / attributes["name"]))
    if tag == "configfile":
        return re.escape(str(job / protocol.CONFIGS_DIR / attributes["name"]))
    if tag == "input":
        return _below(job / protocol.INPUTS_DIR)
    if tag == "output":
        return _below(job / protocol.OUTPUTS_DIR)
    inner = _sequence(element.children, job)
    if tag == "single_quote":
        return f"'{inner}'"
    if tag == "double_quote":
        return f'"{inner}"'
    return inner  # optional: the caller makes it so
