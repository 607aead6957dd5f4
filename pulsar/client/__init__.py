"""The client library Galaxy drives (a drop-in for `pulsar-galaxy-lib`).

Galaxy 26.1 imports these names from the package itself; newer code may import them from
the implementation modules (`manager`, `client`, `destination`, `exceptions`,
`path_mapper`, `staging.inputs`, `staging.models`, `staging.up`, `staging.down`).
Both work; the objects are the same.  The message-queue classes live in `mq_manager` and
`mq_client` (also reachable as `manager.MessageQueueClientManager` and
`client.MessageJobClient`, their homes in the reference); importing them needs no kombu.
"""

from pulsar.client.client import BaseJobClient, JobClient
from pulsar.client.destination import url_to_destination_params
from pulsar.client.exceptions import OutputNotFoundException, PulsarClientTransportError
from pulsar.client.manager import ClientManager, build_client_manager
from pulsar.client.mq_client import MessageJobClient
from pulsar.client.mq_manager import MessageQueueClientManager
from pulsar.client.path_mapper import PathMapper
from pulsar.client.staging import (
    COMMAND_VERSION_FILENAME,
    DEFAULT_DYNAMIC_COLLECTION_PATTERN,
    EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN,
)
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
from pulsar.client.staging.up import submit_job

__all__ = [
    "BaseJobClient",
    "build_client_manager",
    "CLIENT_INPUT_PATH_TYPES",
    "ClientInput",
    "ClientInputs",
    "ClientJobDescription",
    "ClientManager",
    "ClientOutputs",
    "COMMAND_VERSION_FILENAME",
    "DEFAULT_DYNAMIC_COLLECTION_PATTERN",
    "EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN",
    "finish_job",
    "JobClient",
    "MessageJobClient",
    "MessageQueueClientManager",
    "OutputNotFoundException",
    "PathMapper",
    "PulsarClientTransportError",
    "PulsarOutputs",
    "submit_job",
    "url_to_destination_params",
]
