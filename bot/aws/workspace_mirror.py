"""``WorkspaceSync`` on S3: ``<prefix>workspaces/<conversation id>/<file>``.

Each replica keeps a manifest of what it last synced (``.datathread/mirror.json``: name -> S3 ETag
and the local size and mtime), so a pull downloads only objects whose ETag changed and removes
files deleted elsewhere, and a push uploads only files changed here and deletes removed ones.
One thread's turns run one at a time (the SQS message group), so two replicas never push the same
workspace at once. Object names from S3 are resolved inside the workspace (never outside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from bot.private import make_private, private_dir, write_private
from bot.workspace import PRIVATE_DIR, UnsafePath, Workspace

log = logging.getLogger(__name__)
MANIFEST = "mirror.json"


class S3WorkspaceMirror:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def _base(self, conversation_id: str) -> str:
        return f"{self.prefix}workspaces/{conversation_id}/"

    @staticmethod
    def _manifest_path(workspace: Workspace) -> Path:
        return workspace.root / PRIVATE_DIR / MANIFEST

    def _load(self, workspace: Workspace) -> dict[str, dict[str, Any]]:
        try:
            loaded: dict[str, dict[str, Any]] = json.loads(self._manifest_path(workspace).read_text())
            return loaded
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self, workspace: Workspace, manifest: dict[str, dict[str, Any]]) -> None:
        path = self._manifest_path(workspace)
        private_dir(path.parent)
        write_private(path, json.dumps(manifest).encode())

    def _remote(self, conversation_id: str) -> dict[str, str]:
        base = self._base(conversation_id)
        found: dict[str, str] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                found[obj["Key"][len(base):]] = obj["ETag"]
        return found

    def pull_sync(self, conversation_id: str, workspace: Workspace) -> None:
        workspace.ensure()
        manifest = self._load(workspace)
        remote = self._remote(conversation_id)
        for name, etag in remote.items():
            if manifest.get(name, {}).get("etag") == etag:
                continue
            try:
                path = workspace.resolve(name)
            except UnsafePath:
                log.warning("skipping a workspace object outside the workspace")
                continue
            if path.relative_to(workspace.root).parts[0] == PRIVATE_DIR:
                continue
            private_dir(path.parent)
            tmp = path.with_name(path.name + ".mirror-part")
            self.s3.download_file(self.bucket, self._base(conversation_id) + name, str(tmp))
            make_private(tmp)
            tmp.replace(path)
            st = path.stat()
            manifest[name] = {"etag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        for name in [n for n in manifest if n not in remote]:  # deleted on another replica
            with contextlib.suppress(UnsafePath):
                workspace.resolve(name).unlink(missing_ok=True)
            del manifest[name]
        self._save(workspace, manifest)

    def push_sync(self, conversation_id: str, workspace: Workspace) -> None:
        manifest = self._load(workspace)
        local = {f.name: f for f in workspace.files()}
        base = self._base(conversation_id)
        for name, f in local.items():
            seen = manifest.get(name)
            if seen is not None and (seen["size"], seen["mtime_ns"]) == (f.size, f.mtime_ns):
                continue
            with f.path.open("rb") as body:
                etag = self.s3.put_object(Bucket=self.bucket, Key=base + name, Body=body)["ETag"]
            manifest[name] = {"etag": etag, "size": f.size, "mtime_ns": f.mtime_ns}
        gone = [n for n in manifest if n not in local]
        for name in gone:
            self.s3.delete_object(Bucket=self.bucket, Key=base + name)
            del manifest[name]
        self._save(workspace, manifest)

    async def pull(self, conversation_id: str, workspace: Workspace) -> None:
        await asyncio.to_thread(self.pull_sync, conversation_id, workspace)

    async def push(self, conversation_id: str, workspace: Workspace) -> None:
        await asyncio.to_thread(self.push_sync, conversation_id, workspace)
