"""A factory node's private contents: versioned rows that no directory lists.

A dynamic directory's own rows live in the partition named by its id (storage/dirstate.py);
its private contents are more rows in that partition, under node ids derived from (the
node's id, a key). Being ordinary rows, they are committed with the transaction that
stages them (all or nothing), hashed, checked by `pond fsck`, kept alive against blob
garbage collection and carried by every backup and restore, like any file. git-ingest
keeps a pulled tree's manifest and blobs this way (factories/git_ingest.py).
"""

from __future__ import annotations

import uuid
from typing import Protocol

from ..nodes import NodeRow

# Fixed: every pond derives the same id for the same (node, key).
_NAMESPACE = uuid.UUID("5b0e6c1e-6f4a-4c38-9a53-0d1f2a6f7c11")


class _Rows(Protocol):
    def latest(self, part_id: str, node_id: str) -> NodeRow | None: ...


def private_id(owner_id: str, key: str) -> str:
    """The node id of `key`'s rows under the node `owner_id`."""
    return str(uuid.uuid5(_NAMESPACE, f"{owner_id}\0{key}"))


def latest(rows: _Rows, owner_id: str, key: str) -> NodeRow | None:
    """The latest version of the private content `key` of the node `owner_id` (its
    partition is the one named by its id), or None when it was never written."""
    return rows.latest(owner_id, private_id(owner_id, key))
