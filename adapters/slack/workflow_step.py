"""The Workflow Builder step "Run a datathread workflow" (a Slack custom function).

Slack sends ``function_executed`` with the step's inputs; bolt acknowledges it at once (well within
Slack's 3 s) and the run goes on in the background: a new message in the chosen channel opens the
thread where the run is shown exactly as ``run NAME`` shows it in chat. The step then completes
with ``functions.completeSuccess`` (outputs: run id, one-line summary, thread link) or fails with
``functions.completeError`` carrying the failing step's reason. Both calls go out with the
execution's own token, which bolt puts on the listener's client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.complete.async_complete import AsyncComplete
from slack_bolt.context.fail.async_fail import AsyncFail
from slack_sdk.errors import SlackApiError

from bot.commands import RunWorkflow
from bot.messages import ThreadKey
from bot.workflows.spec import WORKFLOW_NAME, parse_param_args

if TYPE_CHECKING:
    from adapters.slack.wiring import SlackAdapter

log = logging.getLogger(__name__)

#: The function's ``callback_id`` in both manifests.
CALLBACK_ID = "run_datathread_workflow"
#: The event the step arrives as (in both manifests' ``bot_events``).
EVENT = "function_executed"
#: Inputs and outputs as the manifests declare them (a test keeps the three in step).
INPUTS = ("workflow", "parameters", "channel", "owner")
OUTPUTS = ("run_id", "summary", "thread_link")
NOT_SET_UP = "Workflows are not set up on this datathread server."
CRASHED = "datathread could not finish the run (details are in its log)."


class WorkflowStep:
    """Handles the step for ``adapter``: validate inputs, open a thread, run, complete or fail."""

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter

    async def on_function(self, inputs: dict[str, Any], complete: AsyncComplete, fail: AsyncFail,
                          body: dict[str, Any], event: dict[str, Any]) -> None:
        """Bolt's listener (auto-acknowledged): start the run in the background and return."""
        execution = str(event.get("function_execution_id") or "")
        team = str(body.get("team_id") or "")
        self.adapter.background.spawn(self._run(dict(inputs or {}), complete, fail, team, execution),
                                      f"Workflow Builder step {execution}")

    async def _run(self, inputs: dict[str, Any], complete: AsyncComplete, fail: AsyncFail, team: str,
                   execution: str) -> None:
        try:
            problem = await self._execute(inputs, complete, team, execution)
        except Exception:
            log.exception("the Workflow Builder step %s crashed", execution)
            problem = CRASHED
        if problem is not None:
            try:
                await fail(problem)
            except SlackApiError as exc:
                log.warning("functions.completeError failed for %s: %s", execution, exc.response.get("error"))

    async def _execute(self, inputs: dict[str, Any], complete: AsyncComplete, team: str,
                       execution: str) -> str | None:
        """Run the workflow; ``None`` once completed, else the error to fail the step with."""
        name = str(inputs.get("workflow") or "").strip()
        channel = str(inputs.get("channel") or "").strip()
        if not WORKFLOW_NAME.match(name):
            return f"'{name}' is not a workflow name: use the name of a file in DATATHREAD_HOME/workflows."
        if not channel:
            return "Choose the channel the results go to."
        try:
            params = parse_param_args([line for line in str(inputs.get("parameters") or "").splitlines()
                                       if line.strip()])
        except ValueError as exc:
            return f"Parameters: {exc} (one name=value per line)."
        workflows = self.adapter.engine.workflows
        if workflows is None:
            return NOT_SET_UP
        await self.adapter.start()
        # Whoever the workflow names as owner may page the results and stop the run; without one
        # the thread belongs to this execution and only the bot can act in it.
        owner = str(inputs.get("owner") or "").strip() or f"workflow:{execution}"
        try:
            root = await self.adapter.client.chat_postMessage(
                channel=channel, text=f"Running the workflow {name} (started from Workflow Builder)…")
        except SlackApiError as exc:
            return f"Could not post in that channel ({exc.response.get('error')}): invite datathread to it first."
        ts = str(root["ts"])
        thread = ThreadKey("slack", team or self.adapter.team_id or "", channel, ts)
        await self.adapter.engine.open_conversation(thread, owner)
        surface = self.adapter.surface(thread, owner)
        pairs = tuple(params.items())
        outcome = await workflows.run(RunWorkflow(name, pairs), thread, owner, surface)
        link = ""
        try:
            link = str((await self.adapter.client.chat_getPermalink(channel=channel, message_ts=ts))["permalink"])
        except SlackApiError as exc:
            log.warning("no permalink for the run's thread: %s", exc.response.get("error"))
        if not outcome.succeeded:
            return outcome.summary + (f" See {link}" if link else "")
        await complete({"run_id": outcome.run_id or "", "summary": outcome.summary, "thread_link": link})
        return None
