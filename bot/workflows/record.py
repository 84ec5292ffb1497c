"""What the state store keeps of a workflow run: its steps, status, times, outputs and errors.

Pure data with a JSON form, so any ``StateStore`` can keep it as one document per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

StepStatus = Literal["pending", "running", "succeeded", "failed", "stopped", "skipped", "reused"]
RunStatus = Literal["running", "succeeded", "failed", "stopped"]


@dataclass(frozen=True)
class StepRecord:
    """One step of a run. ``outputs`` maps each published dataset name to its dataset id; a ``reused``
    step took its outputs from ``reused_from`` (an earlier run) rather than running."""

    id: str
    status: StepStatus = "pending"
    started: datetime | None = None
    finished: datetime | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    reused_from: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run of a workflow: ``id`` is unique; ``owner`` owns every step's conversation."""

    id: str
    workflow: str
    owner: str
    status: RunStatus
    started: datetime
    steps: tuple[StepRecord, ...]
    params: dict[str, str] = field(default_factory=dict)
    finished: datetime | None = None
    error: str | None = None

    def step(self, step_id: str) -> StepRecord | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def with_step(self, record: StepRecord) -> RunRecord:
        return replace(self, steps=tuple(record if s.id == record.id else s for s in self.steps))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "workflow": self.workflow, "owner": self.owner, "status": self.status,
            "started": self.started.isoformat(), "finished": _iso(self.finished), "error": self.error,
            "params": self.params,
            "steps": [{"id": s.id, "status": s.status, "started": _iso(s.started), "finished": _iso(s.finished),
                       "outputs": s.outputs, "error": s.error, "reused_from": s.reused_from} for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            id=data["id"], workflow=data["workflow"], owner=data["owner"], status=data["status"],
            started=datetime.fromisoformat(data["started"]), finished=_time(data.get("finished")),
            error=data.get("error"), params=dict(data.get("params") or {}),
            steps=tuple(StepRecord(id=s["id"], status=s["status"], started=_time(s.get("started")),
                                   finished=_time(s.get("finished")), outputs=dict(s.get("outputs") or {}),
                                   error=s.get("error"), reused_from=s.get("reused_from"))
                        for s in data["steps"]),
        )


@dataclass(frozen=True)
class RunOutcome:
    """How a run started from chat or Workflow Builder ended: its id (``None`` if it never started),
    whether every step succeeded, and the one-line summary told in the thread."""

    run_id: str | None
    succeeded: bool
    summary: str


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
