"""The tool allow-list (`tool_config_files`): which tools this server runs, and in what shape.

Why: without it, anyone who can submit a job runs any command.  With it, a job must name a
listed tool (id and version) at setup, and before it is launched its tool files must be the
tool's own files and its command line must fit the tool's `<command_validator>`
(`pulsar.jobs.command_validator`).  Every refusal is `pulsar.errors.Refused` (403) with the
reason, raised before the job directory is created (setup) or before anything runs (launch).

The option names toolbox files in Galaxy's `tool_conf.xml` form::

    <toolbox tool_path="tools">          <!-- optional; relative to this file's directory -->
      <tool file="cat/cat.xml"/>          <!-- relative to tool_path (default: this directory) -->
      <section id="text" name="Text"><tool file="sort.xml"/></section>
    </toolbox>

Each tool file's root `<tool>` gives `id` and `version` (Galaxy's default `1.0.0` when
absent; Galaxy's macro tokens such as `@TOOL_VERSION@`, from the tool's `<macros>` and the
macro files it imports, are expanded as Galaxy expands them) and, in
`<validators><command_validator>` (where the reference reads it), the command line's shape;
the directory holding it is the tool's directory, against which uploaded tool files are
compared.
XML is parsed with defusedxml: no DTD, no entities, nothing fetched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import defusedxml.ElementTree as safe_xml

from pulsar import protocol
from pulsar.config import existing_file
from pulsar.errors import ConfigurationError, Refused
from pulsar.jobs.command_validator import CommandValidator, ValidatorError
from pulsar.jobs.directory import JobDirectory

log = logging.getLogger(__name__)

#: Galaxy's version for a tool that declares none.
DEFAULT_TOOL_VERSION = "1.0.0"
#: A tool file larger than this is not compared (nor accepted): tool scripts are small.
MAX_TOOL_FILE_BYTES = 64 * 1024 * 1024
#: Largest `tool_id` / `tool_version` file read back from a job directory.
_MAX_ID_BYTES = 64 * 1024

OPTION = "tool_config_files"
ALIAS = "tool_config_file"


@dataclasses.dataclass(frozen=True)
class Tool:
    """One listed tool."""

    id: str
    version: str
    directory: Path
    source: Path
    validator: CommandValidator | None


def _parse(path: Path, what: str) -> Any:
    try:
        return safe_xml.parse(str(path), forbid_dtd=True).getroot()
    except (OSError, safe_xml.ParseError) as exc:
        raise ConfigurationError(f"{OPTION}: cannot read {what} {path}: {exc}") from None
    except ValueError as exc:  # defusedxml's refusals (DTD, entities, external references)
        raise ConfigurationError(f"{OPTION}: {what} {path} was refused: {exc}") from None


def load_tool(path: Path) -> Tool:
    """The tool described by the tool XML at `path`; `ConfigurationError` naming the file for
    a missing file, malformed XML, a root that is not `<tool id=...>`, or an unusable
    `<command_validator>`."""
    root = _parse(path, "tool file")
    tool_id = root.get("id")
    if root.tag != "tool" or not tool_id:
        raise ConfigurationError(f"{OPTION}: {path} is not a tool file (no <tool id=...> root)")
    if root.find("command_validator") is not None:
        raise ConfigurationError(f"{OPTION}: {path}: put <command_validator> inside <validators>, where the "
                                 "reference reads it")
    validators = root.findall("validators/command_validator")
    if len(validators) > 1:
        raise ConfigurationError(f"{OPTION}: {path} has more than one <command_validator>")
    validator = None
    if validators:
        try:
            validator = CommandValidator(validators[0])
        except ValidatorError as exc:
            raise ConfigurationError(f"{OPTION}: <command_validator> of {path}: {exc}") from None
    tokens = _macro_tokens(root, path.parent, path)
    version = _expand(str(root.get("version") or DEFAULT_TOOL_VERSION), tokens, path)
    return Tool(_expand(str(tool_id), tokens, path), version, path.parent, path, validator)


#: Imported macro files followed at most this deep (an import cycle stops here).
_MAX_IMPORT_DEPTH = 8


def _macro_tokens(root: Any, directory: Path, source: Path, depth: int = 0) -> dict[str, str]:
    """Galaxy's macro tokens (`<macros><token name="@X@">value</token>`, also in the files
    `<macros><import>` names, relative to the tool's directory), because tool versions are
    often written `@TOOL_VERSION@+galaxy0` and Galaxy sends the expanded version."""
    tokens: dict[str, str] = {}
    for macros in ([root] if root.tag == "macros" else root.findall("macros")):
        for element in macros:
            if element.tag == "token" and element.get("name"):
                tokens[str(element.get("name"))] = (element.text or "").strip()
            elif element.tag == "import" and element.text and element.text.strip():
                if depth >= _MAX_IMPORT_DEPTH:
                    raise ConfigurationError(f"{OPTION}: {source}: macro imports nest deeper than {_MAX_IMPORT_DEPTH}")
                imported = (directory / element.text.strip()).resolve()
                for name, value in _macro_tokens(_parse(imported, "macro file"), directory, imported, depth + 1).items():
                    tokens.setdefault(name, value)  # the tool's own token wins
    return tokens


def _expand(text: str, tokens: Mapping[str, str], source: Path) -> str:
    """`text` with every macro token replaced (tokens may use tokens)."""
    for _ in range(_MAX_IMPORT_DEPTH):
        expanded = text
        for name, value in tokens.items():
            expanded = expanded.replace(name, value)
        if expanded == text:
            return text
        text = expanded
    raise ConfigurationError(f"{OPTION}: {source}: macro tokens refer to each other in a loop")


def load_toolbox(path: Path) -> list[Tool]:
    """Every tool a toolbox file lists (top level and in `<section>`s), in order."""
    root = _parse(path, "toolbox file")
    if root.tag != "toolbox":
        raise ConfigurationError(f"{OPTION}: {path} is not a toolbox file (root <{root.tag}>, not <toolbox>)")
    base = path.parent / root.get("tool_path", ".")
    entries = [child for child in root if child.tag == "tool"]
    for section in root.findall("section"):
        entries.extend(child for child in section if child.tag == "tool")
    tools = []
    for entry in entries:
        name = entry.get("file")
        if not name:
            raise ConfigurationError(f"{OPTION}: a <tool> in {path} has no file attribute")
        tool_path = (base / name).resolve()
        if not tool_path.is_file():
            raise ConfigurationError(f"{OPTION}: {path} lists {name}, but there is no such file: {tool_path}")
        tools.append(load_tool(tool_path))
    return tools


def toolbox_paths(options: Mapping[str, Any]) -> list[str]:
    """The toolbox files the options name (`tool_config_files`, or its alias), each existing
    and resolved against `config_dir`; [] when neither is set.  A comma-separated string (the
    reference's form) or a list of strings."""
    keys = [key for key in (OPTION, ALIAS) if options.get(key) not in (None, "", [])]
    if not keys:
        return []
    if len(keys) == 2 and options[OPTION] != options[ALIAS]:
        raise ConfigurationError(f"set {OPTION} or its alias {ALIAS}, not both")
    key = keys[0]
    value = options[key]
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise ConfigurationError(f"{key} must be a comma-separated string or a list of file names, not {value!r}")
    if not all(names):
        raise ConfigurationError(f"{key} has an empty file name: {value!r}")
    return [existing_file({key: name, "config_dir": options.get("config_dir")}, key) for name in names]


class ToolPolicy:
    """The allow-list: (tool id, version) -> `Tool`."""

    def __init__(self, tools: Sequence[Tool]):
        self.tools: dict[tuple[str, str], Tool] = {}
        for tool in tools:
            key = (tool.id, tool.version)
            if key in self.tools:
                log.warning("%s: tool %s version %s is listed twice (%s, %s); using the first",
                            OPTION, tool.id, tool.version, self.tools[key].source, tool.source)
                continue
            self.tools[key] = tool

    def check_tool(self, tool_id: Any, tool_version: Any) -> Tool:
        """The listed tool named by the client; `Refused` when there is none."""
        if not isinstance(tool_id, str) or not tool_id:
            raise Refused("this server runs only the tools of its allow-list, and the job names no tool_id")
        version = tool_version if isinstance(tool_version, str) and tool_version else DEFAULT_TOOL_VERSION
        tool = self.tools.get((tool_id, version))
        if tool is None:
            raise Refused(f"tool {tool_id!r} version {version!r} is not in this server's tool allow-list")
        return tool

    def check_job(self, directory: JobDirectory, command_line: str) -> None:
        """Before launch: the tool recorded at setup is listed, every file in `tool_files/`
        is byte-identical to the tool's file of that name, config files are named by the
        tool's `<command_validator>`, and the command line fits it.  `Refused` otherwise."""
        tool = self.check_tool(_read_json_string(directory, "tool_id"), _read_json_string(directory, "tool_version"))
        for name in directory.list_files(protocol.TOOL_FILES_DIR, "/"):
            _check_tool_file(directory, tool, name)
        if tool.validator is None:
            return
        for name in directory.list_files(protocol.CONFIGS_DIR, "/"):
            if name not in tool.validator.configfiles:
                raise Refused(f"config file {name!r} is not named by the <command_validator> of tool {tool.id!r}")
        if not tool.validator.matches(command_line, directory.path):
            raise Refused(f"the command line does not fit the <command_validator> of tool {tool.id!r}")


def _read_json_string(directory: JobDirectory, name: str) -> str | None:
    data = directory.read_whole([name], _MAX_ID_BYTES)
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _check_tool_file(directory: JobDirectory, tool: Tool, name: str) -> None:
    own = (tool.directory / name).resolve()
    inside = own.is_relative_to(tool.directory.resolve())
    if not inside or not own.is_file() or own.stat().st_size > MAX_TOOL_FILE_BYTES:
        raise Refused(f"tool file {name!r} is not a file of tool {tool.id!r}")
    expected = own.read_bytes()
    uploaded = directory.read_whole([protocol.TOOL_FILES_DIR, *name.split("/")], len(expected))
    if uploaded != expected:
        raise Refused(f"tool file {name!r} differs from the file of tool {tool.id!r}")


def build_tool_policy(options: Mapping[str, Any]) -> ToolPolicy | None:
    """The allow-list the options configure, or None without `tool_config_files`.  Every
    toolbox and tool file is read now, so a missing or malformed one stops the start."""
    paths = toolbox_paths(options)
    if not paths:
        return None
    tools = [tool for path in paths for tool in load_toolbox(Path(path))]
    policy = ToolPolicy(tools)
    log.info("%s: %d tool(s) allowed from %s", OPTION, len(policy.tools), ", ".join(paths))
    return policy
