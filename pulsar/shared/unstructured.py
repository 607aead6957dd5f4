"""Naming of unstructured files (reference data outside any dataset).

A referenced path is staged together with its surroundings `depth` levels up, so a tool
that opens siblings of the referenced file (an index next to a FASTA, say) finds them.
All those files go under `unstructured/<md5 of the anchor directory>/<path below it>`,
which keeps two references with the same base name apart.
"""

from __future__ import annotations

import hashlib
import os


def anchor_of(path: str, depth: int) -> str:
    """The directory whose tree is staged: `depth` levels above `path` (its parent for 0)."""
    anchor = os.path.dirname(os.path.abspath(path))
    for _ in range(max(depth - 1, 0)):
        anchor = os.path.dirname(anchor)
    return anchor


def anchor_key(anchor: str) -> str:
    return hashlib.md5(anchor.encode("utf-8")).hexdigest()


def remote_name(path: str, depth: int) -> str:
    """The relative name (with "/") under `unstructured/` of the referenced `path`."""
    anchor = anchor_of(path, depth)
    relative = os.path.relpath(os.path.abspath(path), anchor).replace(os.sep, "/")
    return anchor_key(anchor) + "/" + relative


def unstructured_map(path: str, depth: int) -> dict[str, str]:
    """Every local file to stage for a reference to `path`, mapped to its relative name.

    Depth 0 stages `path` itself (a file, or a directory's whole tree); depth >= 1 stages
    the whole tree of the anchor directory.
    """
    path = os.path.abspath(path)
    anchor = anchor_of(path, depth)
    key = anchor_key(anchor)
    root = path if depth == 0 else anchor
    found: dict[str, str] = {}
    if os.path.isfile(root):
        files = [root]
    else:
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            files.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    for local in files:
        if os.path.isfile(local):
            found[local] = key + "/" + os.path.relpath(local, anchor).replace(os.sep, "/")
    return found
