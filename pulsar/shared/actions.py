"""File actions: what happens to one file, and their wire form.

An action says who moves a file's bytes: the client (`transfer`, `copy`, `message`), the
server (`remote_*`, listed in `remote_staging.setup`) or nobody (`none`, `rewrite`).  The
dictionary form (spec 6.5) travels inside `remote_staging`; `FileAction.from_dict` is what
the server rebuilds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

NONE = "none"
REWRITE = "rewrite"
TRANSFER = "transfer"
COPY = "copy"
REMOTE_COPY = "remote_copy"
REMOTE_TRANSFER = "remote_transfer"
REMOTE_TRANSFER_TUS = "remote_transfer_tus"
REMOTE_OBJECT_STORE_COPY = "remote_object_store_copy"
REMOTE_RSYNC_TRANSFER = "remote_rsync_transfer"
REMOTE_SCP_TRANSFER = "remote_scp_transfer"
MESSAGE = "message"

#: Who moves the bytes.
STAGING_NONE = "none"
STAGING_LOCAL = "local"
STAGING_REMOTE = "remote"

STAGING_OF_ACTION = {
    NONE: STAGING_NONE,
    REWRITE: STAGING_NONE,
    TRANSFER: STAGING_LOCAL,
    COPY: STAGING_LOCAL,
    REMOTE_COPY: STAGING_REMOTE,
    REMOTE_TRANSFER: STAGING_REMOTE,
    REMOTE_TRANSFER_TUS: STAGING_REMOTE,
    REMOTE_OBJECT_STORE_COPY: STAGING_REMOTE,
    REMOTE_RSYNC_TRANSFER: STAGING_REMOTE,
    REMOTE_SCP_TRANSFER: STAGING_REMOTE,
}

#: Values accepted for `default_file_action` and a rule's `action`.
KNOWN_ACTIONS = frozenset(STAGING_OF_ACTION)
URL_ACTIONS = frozenset({REMOTE_TRANSFER, REMOTE_TRANSFER_TUS})
SSH_ACTIONS = frozenset({REMOTE_RSYNC_TRANSFER, REMOTE_SCP_TRANSFER})
#: Action types a server accepts in `remote_staging.setup`.
SERVER_SETUP_ACTIONS = frozenset(
    {REMOTE_COPY, REMOTE_TRANSFER, REMOTE_TRANSFER_TUS, MESSAGE, REMOTE_RSYNC_TRANSFER, REMOTE_SCP_TRANSFER,
     REMOTE_OBJECT_STORE_COPY}
)


class ActionError(ValueError):
    """An action or mapper configuration is invalid."""


@dataclasses.dataclass(frozen=True)
class FileAction:
    """One resolved action for one client path.

    `path` is the client-side path.  Only the fields relevant to `action_type` are set.
    `ssh_key` is never written into the action dictionary (it travels in the mapper).
    """

    action_type: str
    path: str | None = None
    object_store_ref: Mapping[str, Any] | None = None
    url: str | None = None
    contents: str | None = None
    source_directory: str | None = None
    destination_directory: str | None = None
    depth: int = 0
    ssh_user: str | None = None
    ssh_host: str | None = None
    ssh_port: int | str | None = None
    ssh_key: str | None = None

    @property
    def staging(self) -> str:
        if self.action_type == MESSAGE:
            return STAGING_LOCAL
        return STAGING_OF_ACTION[self.action_type]

    @property
    def staging_needed(self) -> bool:
        return self.staging != STAGING_NONE

    @property
    def is_remote(self) -> bool:
        return self.staging == STAGING_REMOTE

    def rewritten_path(self) -> str | None:
        """For `rewrite`: the path with `source_directory` replaced; otherwise None."""
        if self.action_type != REWRITE or self.path is None:
            return None
        source = self.source_directory or ""
        if not self.path.startswith(source):
            return None
        return (self.destination_directory or "") + self.path[len(source):]

    def to_dict(self) -> dict[str, Any]:
        if self.action_type == MESSAGE:
            return {"contents": self.contents, "action_type": MESSAGE}
        result: dict[str, Any] = {
            "path": self.path,
            "source": {"path": self.path, "object_store_ref": self.object_store_ref},
            "action_type": self.action_type,
        }
        if self.action_type in URL_ACTIONS:
            result["url"] = self.url
        if self.action_type in SSH_ACTIONS:
            result.update(ssh_user=self.ssh_user, ssh_host=self.ssh_host, ssh_port=self.ssh_port)
        if self.action_type == REWRITE:
            result.update(source_directory=self.source_directory, destination_directory=self.destination_directory)
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FileAction":
        """Rebuild an action from its dictionary; raises `ActionError` for unknown types."""
        action_type = data.get("action_type")
        if action_type == MESSAGE:
            return cls(MESSAGE, contents=data.get("contents") or "")
        if not isinstance(action_type, str) or action_type not in KNOWN_ACTIONS:  # a list is unhashable
            raise ActionError(f"unknown action_type {action_type!r}")
        source = data.get("source")
        if isinstance(source, Mapping):
            path = source.get("path")
            ref = source.get("object_store_ref")
        else:
            path = data.get("path")
            ref = None
        return cls(
            action_type,
            path=path,
            object_store_ref=ref,
            url=data.get("url"),
            source_directory=data.get("source_directory"),
            destination_directory=data.get("destination_directory"),
            ssh_user=data.get("ssh_user"),
            ssh_host=data.get("ssh_host"),
            ssh_port=data.get("ssh_port"),
            ssh_key=data.get("ssh_key"),
        )


def message_action(contents: str) -> FileAction:
    return FileAction(MESSAGE, contents=contents)
