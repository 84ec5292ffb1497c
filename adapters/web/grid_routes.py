"""The dataset grid: metadata, rows by block (sorted server-side), charts and full exports.

Rows travel in fixed blocks of ``BLOCK`` rows (one ``DatasetStore.page`` each, the same store and
sort permutations as the chat buttons), so the page fetches only the blocks in view and any block
costs the same wherever it is in the data. Columns are named by index, as in sealed intents.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from adapters.web.guard import ENGINE, grant_of, page
from adapters.web.security import attachment
from bot.actions import chart_path, export_path
from bot.datasets.model import (
    CHART_KINDS,
    ChartSpec,
    DatasetError,
    DatasetExpired,
    DatasetMeta,
    ExportFormat,
    SortSpec,
)
from bot.web_access import NO_SUCH_DATASET
from bot.workspace import PRIVATE_DIR

#: Rows per block a grid fetches.
BLOCK = 100
EXPIRED = "expired — run it again"


def _error(status: int, message: str, **extra: Any) -> web.HTTPException:
    body = json.dumps({"error": message, **extra})
    cls = {404: web.HTTPNotFound, 410: web.HTTPGone, 400: web.HTTPBadRequest}[status]
    return cls(text=body, content_type="application/json")


async def _dataset(request: web.Request) -> DatasetMeta:
    """The dataset in the path, if the session holds and it is of the session's conversation."""
    grant = await grant_of(request)
    try:
        return await request.app[ENGINE].web.dataset(grant, request.match_info["dataset"])
    except DatasetExpired:
        raise _error(410, EXPIRED, expired=True) from None
    except DatasetError:
        raise _error(404, NO_SUCH_DATASET) from None  # unknown and foreign ids look the same


def _index(request: web.Request, name: str, meta: DatasetMeta, *, required: bool = True) -> int | None:
    raw = request.query.get(name, "")
    if not raw and not required:
        return None
    if not raw.isdigit() or int(raw) >= len(meta.columns):
        raise _error(400, f"{name} must name a column by its index")
    return int(raw)


def _sort(request: web.Request, meta: DatasetMeta) -> SortSpec | None:
    index = _index(request, "sort", meta, required=False)
    return None if index is None else SortSpec(meta.columns[index].name, request.query.get("desc") == "1")


async def grid_page(request: web.Request) -> web.Response:
    await grant_of(request)
    return page("grid.html")


async def meta_json(request: web.Request) -> web.Response:
    meta = await _dataset(request)
    return web.json_response({
        "id": meta.id, "name": meta.name, "rows": meta.rows, "block": BLOCK,
        "columns": [{"name": c.name, "type": c.type} for c in meta.columns],
        "expires": meta.expires.isoformat(timespec="minutes"), "charts": list(CHART_KINDS),
    })


async def rows_json(request: web.Request) -> web.Response:
    """Block ``block`` (from 0) of the rows, in ``sort`` order (a column index, ``desc=1``) if given."""
    meta = await _dataset(request)
    raw = request.query.get("block", "")
    if not raw.isdigit() or int(raw) * BLOCK >= max(meta.rows, 1):
        raise _error(400, "block is out of range")
    try:
        page = await request.app[ENGINE].datasets.page(meta.id, int(raw) + 1, BLOCK, _sort(request, meta))
    except DatasetExpired:
        raise _error(410, EXPIRED, expired=True) from None
    except DatasetError as exc:
        raise _error(400, str(exc)) from None
    return web.json_response({"start": page.start, "rows": page.rows})


async def chart_png(request: web.Request) -> web.StreamResponse:
    """The same downsampled PNG as the Chart button, drawn into the workspace's charts folder."""
    meta = await _dataset(request)
    kind = next((k for k in CHART_KINDS if k == request.query.get("kind")), None)
    if kind is None:
        raise _error(400, "kind must be one of " + ", ".join(CHART_KINDS))
    x = _index(request, "x", meta)
    y = _index(request, "y", meta, required=False)
    assert x is not None
    spec = ChartSpec(kind, meta.columns[x].name, None if y is None else meta.columns[y].name)
    engine = request.app[ENGINE]
    grant = await grant_of(request)
    out = chart_path(await engine.web.workspace(grant), meta, spec)
    try:
        await engine.web.chart(grant, meta, spec, out)
    except DatasetExpired:
        raise _error(410, EXPIRED, expired=True) from None
    except DatasetError as exc:
        raise _error(400, str(exc)) from None
    return web.FileResponse(out, headers={"Content-Type": "image/png", "Content-Disposition": "inline"})


async def export(request: web.Request) -> web.StreamResponse:
    """The full data (in the grid's sort order, if any) as CSV or Parquet, as an attachment."""
    meta = await _dataset(request)
    fmt = request.match_info["format"]
    if fmt not in ("csv", "parquet"):
        raise web.HTTPNotFound()
    sort = _sort(request, meta)
    engine = request.app[ENGINE]
    export_format: ExportFormat = "csv" if fmt == "csv" else "parquet"
    grant = await grant_of(request)
    out = export_path(await engine.web.workspace(grant), meta, export_format, sort)
    try:
        await engine.web.export(grant, meta, export_format, out, sort)
    except DatasetExpired:
        raise _error(410, EXPIRED, expired=True) from None
    kind = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return web.FileResponse(out, headers={"Content-Type": kind, "Content-Disposition": attachment(out.name)})


async def open_table(request: web.Request) -> web.Response:
    """Open a tabular workspace file in the grid: registered as a dataset of the conversation."""
    grant = await grant_of(request)
    engine = request.app[ENGINE]
    workspace = await engine.web.workspace(grant)
    name = request.query.get("path", "")
    try:
        path = workspace.resolve(name)
        if not path.is_file() or path.relative_to(workspace.root).parts[0] == PRIVATE_DIR:
            raise ValueError(name)
        meta = await engine.web.open_table(grant, path)
    except (ValueError, DatasetError):
        meta = None
    if meta is None:
        raise _error(400, "That file cannot be opened as a table.")
    return web.json_response({"dataset": meta.id})
