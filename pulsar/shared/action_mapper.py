"""Which file action applies to a path: parsing `file_actions` and resolving rules.

Configuration (destination params, spec 6.3/6.4): `default_file_action`, and rules from
`file_action_config` (a JSON/YAML/INI file) or `file_actions` (inline), each rule with
`path` + `match_type` (prefix/glob/regex), `action`, `path_types` (`*defaults*`, `*any*`
or names), `depth`, `source_directory`/`destination_directory` (rewrite) and `ssh_*`.
The first matching rule wins; otherwise the default action applies to the default path
types and `none` to `unstructured`.  The mapper serialises to the dictionary sent in
`remote_staging.action_mapper`, and the server rebuilds it with `from_dict`.
"""

from __future__ import annotations

import configparser
import dataclasses
import fnmatch
import json
import os
import re
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from pulsar.protocol import ALL_PATH_TYPES, DEFAULT_PATH_TYPES, PathType
from pulsar.shared import actions
from pulsar.shared.actions import ActionError, FileAction

MATCH_PREFIX = "prefix"
MATCH_GLOB = "glob"
MATCH_REGEX = "regex"
MATCH_TYPES = (MATCH_PREFIX, MATCH_GLOB, MATCH_REGEX)

#: With these types a `none` action would leave the file where the server cannot see it
#: (the server's working/metadata/job directories are never the client's).
FORCED_COPY_TYPES = frozenset(
    {
        PathType.WORKDIR.value,
        PathType.JOBDIR.value,
        PathType.METADATA.value,
        PathType.OUTPUT_WORKDIR.value,
        PathType.OUTPUT_METADATA.value,
        PathType.OUTPUT_JOBDIR.value,
    }
)
DEFAULT_TYPE_NAMES = frozenset(t.value for t in DEFAULT_PATH_TYPES)
#: Characters that end an unstructured path reference in a command line or config file.
_REFERENCE_CHARS = r"[^\s'\",]"


def parse_path_types(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Expand `*defaults*` / `*any*` and validate the names."""
    if value is None:
        tokens = ["*defaults*"]
    elif isinstance(value, str):
        tokens = [t.strip() for t in value.split(",") if t.strip()]
    else:
        tokens = [str(t).strip() for t in value]
    known = {t.value for t in ALL_PATH_TYPES} | {"container"}
    result: list[str] = []
    for token in tokens:
        if token == "*defaults*":
            expanded = [t.value for t in DEFAULT_PATH_TYPES]
        elif token == "*any*":
            expanded = [t.value for t in ALL_PATH_TYPES] + ["container"]
        elif token in known:
            expanded = [token]
        else:
            raise ActionError(f"unknown path type {token!r} in path_types")
        result.extend(t for t in expanded if t not in result)
    return tuple(result)


def _check_action(name: object) -> str:
    if name not in actions.KNOWN_ACTIONS:
        raise ActionError(f"unknown file action {name!r}; expected one of {sorted(actions.KNOWN_ACTIONS)}")
    return str(name)


def _normalize(path: str) -> str:
    return os.path.abspath(path)


@dataclasses.dataclass(frozen=True)
class PathRule:
    """One entry of `paths`."""

    action: str = actions.TRANSFER
    path: str | None = None
    match_type: str = MATCH_PREFIX
    path_types: tuple[str, ...] = dataclasses.field(default_factory=lambda: parse_path_types(None))
    path_types_text: str = "*defaults*"
    depth: int = 0
    source_directory: str | None = None
    destination_directory: str | None = None
    ssh_user: str | None = None
    ssh_host: str | None = None
    ssh_port: int | str | None = None
    ssh_key: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PathRule":
        action = _check_action(data.get("action", actions.TRANSFER))
        match_type = data.get("match_type") or MATCH_PREFIX
        if match_type not in MATCH_TYPES:
            raise ActionError(f"unknown match_type {match_type!r}; expected one of {MATCH_TYPES}")
        raw_types = data.get("path_types", "*defaults*")
        text = raw_types if isinstance(raw_types, str) else ",".join(raw_types)
        path = data.get("path")
        if path is not None and match_type == MATCH_REGEX:
            try:
                re.compile(path)
            except re.error as exc:
                raise ActionError(f"invalid regex {path!r}: {exc}") from None
        if action == actions.REWRITE and not (data.get("source_directory") and data.get("destination_directory")):
            raise ActionError("a rewrite rule needs source_directory and destination_directory")
        ssh = {k: data.get(k) for k in ("ssh_user", "ssh_host", "ssh_port", "ssh_key")}
        ssh = {k: (None if v == "__UNSET__" else v) for k, v in ssh.items()}
        return cls(
            action=action,
            path=path,
            match_type=match_type,
            path_types=parse_path_types(raw_types),
            path_types_text=text,
            depth=int(data.get("depth") or 0),
            source_directory=data.get("source_directory"),
            destination_directory=data.get("destination_directory"),
            **ssh,
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "action": self.action,
            "path_types": self.path_types_text,
            "match_type": self.match_type,
            "depth": self.depth,
        }
        if self.path is not None:
            result["path"] = self.path
        for key in ("source_directory", "destination_directory", "ssh_user", "ssh_host", "ssh_port", "ssh_key"):
            value = getattr(self, key)
            if value is not None:
                result[key] = value
        return result

    def matches(self, path: str, path_type: str) -> bool:
        if path_type not in self.path_types:
            return False
        if self.path is None:
            return True
        if self.match_type == MATCH_PREFIX:
            return _normalize(path).startswith(_normalize(self.path))
        if self.match_type == MATCH_GLOB:
            return fnmatch.fnmatchcase(_normalize(path), self.path)
        return re.match(self.path, _normalize(path)) is not None

    def reference_pattern(self, separator: str = os.sep) -> str | None:
        """A regex finding paths this rule covers inside free text (command lines, configs)."""
        if self.path is None:
            return None
        if self.match_type == MATCH_PREFIX:
            return re.escape(self.path.rstrip(separator) + separator) + _REFERENCE_CHARS + "+"
        if self.match_type == MATCH_GLOB:
            pieces = []
            for char in self.path:
                if char == "*":
                    pieces.append(_REFERENCE_CHARS + "*")
                elif char == "?":
                    pieces.append(_REFERENCE_CHARS)
                else:
                    pieces.append(re.escape(char))
            return "".join(pieces)
        return self.path


class FileActionMapper:
    """Resolves the action for (client path, path type)."""

    def __init__(
        self,
        default_action: str = actions.TRANSFER,
        rules: Iterable[PathRule] = (),
        files_endpoint: str | None = None,
        ssh_key: str | None = None,
        ssh_user: str | None = None,
        ssh_host: str | None = None,
        ssh_port: int | str | None = None,
    ):
        self.default_action = _check_action(default_action)
        self.rules = list(rules)
        self.files_endpoint = files_endpoint
        self.ssh_key = ssh_key
        self.ssh_user = ssh_user
        self.ssh_host = ssh_host
        self.ssh_port = ssh_port

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_destination_params(cls, params: Mapping[str, Any]) -> "FileActionMapper":
        """Build from Galaxy destination params (`file_action_config` beats `file_actions`)."""
        config_path = params.get("file_action_config")
        if config_path:
            rule_dicts = load_rules_file(config_path)
        else:
            rule_dicts = _rules_of(params.get("file_actions") or {})
        return cls(
            default_action=params.get("default_file_action") or actions.TRANSFER,
            rules=[PathRule.from_dict(r) for r in rule_dicts],
            files_endpoint=params.get("files_endpoint"),
            ssh_key=params.get("ssh_key"),
            ssh_user=params.get("ssh_user"),
            ssh_host=params.get("ssh_host"),
            ssh_port=params.get("ssh_port"),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FileActionMapper":
        return cls(
            default_action=data.get("default_action") or actions.TRANSFER,
            rules=[PathRule.from_dict(r) for r in data.get("paths") or []],
            files_endpoint=data.get("files_endpoint"),
            ssh_key=data.get("ssh_key"),
            ssh_user=data.get("ssh_user"),
            ssh_host=data.get("ssh_host"),
            ssh_port=data.get("ssh_port"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "default_action": self.default_action,
            "files_endpoint": self.files_endpoint,
            "ssh_key": self.ssh_key,
            "ssh_user": self.ssh_user,
            "ssh_port": self.ssh_port,
            "ssh_host": self.ssh_host,
            "paths": [rule.to_dict() for rule in self.rules],
        }

    # -- resolution --------------------------------------------------------------------

    def rule_for(self, path: str, path_type: str) -> PathRule | None:
        for rule in self.rules:
            if rule.matches(path, path_type):
                return rule
        return None

    def action(self, source: str | Mapping[str, Any], path_type: str | PathType) -> FileAction:
        """The action for one client path (or `{"path", "object_store_ref"}` source)."""
        path_type = str(path_type)
        if isinstance(source, Mapping):
            path = source["path"]
            ref = source.get("object_store_ref")
        else:
            path, ref = source, None
        rule = self.rule_for(path, path_type)
        if rule is not None:
            name = rule.action
        elif path_type in DEFAULT_TYPE_NAMES:
            name = self.default_action
        else:
            name = actions.NONE
        if name == actions.NONE and path_type in FORCED_COPY_TYPES:
            name = actions.COPY
        fields: dict[str, Any] = {"path": path, "object_store_ref": ref, "depth": rule.depth if rule else 0}
        if name == actions.REWRITE:
            assert rule is not None  # the default action can only be rewrite through a rule
            fields.update(source_directory=rule.source_directory, destination_directory=rule.destination_directory)
        if name in actions.URL_ACTIONS:
            fields["url"] = self.files_url(path, path_type)
        if name in actions.SSH_ACTIONS:
            fields.update(self._ssh_properties(rule))
        return FileAction(name, **fields)

    def files_url(self, path: str, path_type: str) -> str:
        if not self.files_endpoint:
            raise ActionError("remote transfer actions need the destination parameter files_endpoint")
        joiner = "&" if "?" in self.files_endpoint else "?"
        return self.files_endpoint + joiner + urlencode({"path": path, "file_type": path_type})

    def _ssh_properties(self, rule: PathRule | None) -> dict[str, Any]:
        def pick(key: str) -> Any:
            value = getattr(rule, key) if rule is not None else None
            return value if value is not None else getattr(self, key)

        props = {k: pick(k) for k in ("ssh_user", "ssh_host", "ssh_port", "ssh_key")}
        if not props["ssh_key"]:
            raise ActionError("rsync/scp actions need ssh_key")
        return props

    def unstructured_patterns(self, separator: str = os.sep) -> list[re.Pattern[str]]:
        """Regexes that find unstructured path references in text, from rules covering that type."""
        patterns = []
        for rule in self.rules:
            if PathType.UNSTRUCTURED.value in rule.path_types:
                pattern = rule.reference_pattern(separator)
                if pattern:
                    patterns.append(re.compile(pattern))
        return patterns


def _rules_of(config: Any) -> list[Mapping[str, Any]]:
    if isinstance(config, str):
        config = json.loads(config) if config.strip() else {}
    if isinstance(config, list):
        return config
    if not isinstance(config, Mapping):
        raise ActionError("file_actions must be a mapping with a 'paths' list")
    rules = config.get("paths") or []
    if not isinstance(rules, list):
        raise ActionError("file_actions 'paths' must be a list")
    return rules


def load_rules_file(path: str) -> list[Mapping[str, Any]]:
    """Read a `file_action_config` file: JSON (`.json`), INI (`.ini`), else YAML."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        return _rules_of(json.loads(text))
    if path.endswith(".ini"):
        parser = configparser.ConfigParser()
        parser.read_string(text)
        return [dict(parser.items(section)) for section in parser.sections()]
    import yaml

    return _rules_of(yaml.safe_load(text) or {})
