"""Stage 7: the relief.filing.bundle.ready.v1 CloudEvent, published after the bundle is stored.

Its CloudEvent id is the bundle id and its data is built only from the stored manifest, so a
notification sent again (after a crash between notifying and committing) is identical:
consumers deduplicate by event id.
"""

from __future__ import annotations

from typing import Any

from service.events import BUNDLE_READY, cloudevent
from service.store import Store

SOURCE = "urn:reliefdocs:worker"


def event(manifest: dict[str, Any], manifest_key: str, store: Store) -> dict[str, Any]:
    data = {
        "bundle_id": manifest["bundle_id"],
        "court_code": manifest["court_code"],
        "batch_id": manifest["batch_id"],
        "volume": manifest["volume"],
        "case_count": len(manifest["decisions"]),
        "manifest_uri": store.uri(manifest_key),
        "documents": [{"role": d["role"], "uri": store.uri(d["key"]), "media_type": d["media_type"],
                       "sha256": d["sha256"], "bytes": d["bytes"], "pages": d.get("pages"),
                       "confidential": d.get("confidential", False)} for d in manifest["documents"]],
    }
    if "efiling" in manifest:  # the papers in order of submission (a manifest stored before 2026-12 has none)
        data["efiling"] = [{"type": p["type"], "role": p["role"], "title": p["title"], "uri": store.uri(p["key"]),
                            "pages": p["pages"], "confidential": p["confidential"],
                            **({"editable_uri": store.uri(p["editable_key"])} if p.get("editable_key") else {})}
                           for p in manifest["efiling"]]
    return cloudevent(BUNDLE_READY, manifest["bundle_id"], SOURCE, manifest["created_at"], data)
