"""Input descriptions Galaxy hands to `submit_job`."""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Mapping


class _PathTypes:
    """The three kinds of input path (Galaxy reads them as attributes)."""

    INPUT_PATH = "input_path"
    INPUT_EXTRA_FILES_PATH = "input_extra_files_path"
    INPUT_METADATA_PATH = "input_metadata_path"

    def __iter__(self) -> Iterator[str]:
        return iter((self.INPUT_PATH, self.INPUT_EXTRA_FILES_PATH, self.INPUT_METADATA_PATH))

    def __repr__(self) -> str:
        return "CLIENT_INPUT_PATH_TYPES(" + ", ".join(self) + ")"


CLIENT_INPUT_PATH_TYPES = _PathTypes()


class ClientInput:
    """One input path: a dataset, its extra-files directory, or a metadata file."""

    def __init__(self, path: str, input_type: str, object_store_ref: Mapping[str, Any] | None = None):
        self.path = path
        self.input_type = input_type
        self.object_store_ref = object_store_ref

    @property
    def action_source(self) -> dict[str, Any]:
        """What the file-action mapper resolves: the path plus any object-store reference."""
        return {"path": self.path, "object_store_ref": self.object_store_ref}

    def __repr__(self) -> str:
        return f"ClientInput({self.path!r}, {self.input_type!r})"


class ClientInputs:
    """An iterable of `ClientInput`."""

    def __init__(self, client_inputs: Iterable[ClientInput]):
        self.client_inputs = list(client_inputs)

    def __iter__(self) -> Iterator[ClientInput]:
        return iter(self.client_inputs)

    def __len__(self) -> int:
        return len(self.client_inputs)

    @staticmethod
    def for_simple_input_paths(input_files: Iterable[str]) -> "ClientInputs":
        """Legacy `input_files`: each path, plus its sibling `<name>_files` directory if present."""
        inputs = []
        for path in input_files:
            inputs.append(ClientInput(path, CLIENT_INPUT_PATH_TYPES.INPUT_PATH))
            extra = extra_files_directory(path)
            if os.path.isdir(extra):
                inputs.append(ClientInput(extra, CLIENT_INPUT_PATH_TYPES.INPUT_EXTRA_FILES_PATH))
        return ClientInputs(inputs)


def extra_files_directory(dataset_path: str) -> str:
    """`/x/dataset_1.dat` -> `/x/dataset_1_files` (Galaxy's naming)."""
    base, ext = os.path.splitext(dataset_path)
    return (base if ext == ".dat" else dataset_path) + "_files"
