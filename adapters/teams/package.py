"""The Teams app package a person uploads: manifest.json and the two icons at the zip's root."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "manifests" / "teams"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def write_package(app_id: str, out: Path) -> Path:
    """Write the zip to ``out`` (a file, or a directory to put ``datathread-teams.zip`` in).

    ``id`` and the bot's ``botId`` are set to ``app_id`` (the Azure bot's Microsoft App ID).
    Raises ``ValueError`` when ``app_id`` is not a GUID.
    """
    if not _GUID.match(app_id.strip()):
        raise ValueError(f"the app id must be the bot's Microsoft App ID (a GUID), got {app_id!r}")
    app_id = app_id.strip().lower()
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text())
    manifest["id"] = app_id
    for bot in manifest.get("bots", []):
        bot["botId"] = app_id
    target = out / "datathread-teams.zip" if out.is_dir() else out
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        for icon in ("color.png", "outline.png"):
            zf.write(MANIFEST_DIR / icon, icon)
    return target
