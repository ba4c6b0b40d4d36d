"""DIR/_pond_export.json: what earlier exports into DIR wrote, so a re-export redoes only
the series that changed and deletes only what an export wrote.

{"pond_id": ..., "txn_seq": N, "series": {"/a/b": {"key", "format", "temporal", "files",
"rows", "txn_seq"}}}. An entry is written (with an empty key) before its files, so a crash
mid-way leaves the series marked as an export's own, to be redone by the next run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import PondError, RemoteNotFound
from .spec import MANIFEST

if TYPE_CHECKING:
    from ..storage.objstore import ObjectStore


def load(store: ObjectStore) -> dict[str, Any]:
    try:
        raw = store.get(MANIFEST)
    except RemoteNotFound:
        return {"series": {}}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("series"), dict):
        raise PondError(f"{store.url}/{MANIFEST} is damaged: remove it and export again")
    return data


def save(store: ObjectStore, manifest: dict[str, Any]) -> None:
    store.put(MANIFEST, json.dumps(manifest, sort_keys=True, indent=1).encode() + b"\n")
