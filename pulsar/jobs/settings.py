"""Settings of one job service (one manager), derived from its options by `pulsar.core`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pulsar import protocol
from pulsar.jobs.script import ScriptOptions

if TYPE_CHECKING:
    from pulsar.jobs.authorization import UserAuth
    from pulsar.jobs.toolbox import ToolPolicy


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    staging_root: Path
    assign_ids: str = "galaxy"
    maximum_stream_size: int = protocol.DEFAULT_MAXIMUM_STREAM_SIZE
    job_directory_mode: int | None = None
    debug: bool = False
    system_properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    script: ScriptOptions = dataclasses.field(default_factory=ScriptOptions)
    job_name_template: str = "pulsar_$job_id"
    max_job_attempts: int = 3
    fsync_uploads: bool = True
    staging_threads: int = 4
    #: the tool allow-list (`tool_config_files`); None runs any tool
    tool_policy: "ToolPolicy | None" = None
    #: the user checks (`user_auth`); None runs every user's jobs
    user_auth: "UserAuth | None" = None
