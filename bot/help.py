"""Help texts, written once for every surface (Markdown)."""

from __future__ import annotations

COMMANDS = """\
*Commands* (they act on the latest dataset; add `in NAME` for another, e.g. `next in sales`):
• `next`, `prev`, `page N` — move through the rows · `columns next|prev|N` — through a wide table's columns
• `sort COLUMN [desc]` — sort by a column
• `chart KIND X [Y]` — draw a chart (KIND: line, bar, scatter, hist, box)
• `datasets` — this conversation's datasets · `files` — its workspace with sizes
• `download [csv|parquet]` — the whole latest dataset as a file · `help` — this text
• `run WORKFLOW [name=value ...]` — run a workflow in this thread · `workflows` — the ones there are
• `workspace` — a private link to this conversation's files and datasets in your browser \
(`workspace revoke` voids every earlier link)"""

LOCAL_AGENT = """\
This conversation runs on the *local Python kernel*: send code and it runs here, with this \
conversation's workspace as its folder.
• Send a fenced block (```` ```python ... ``` ````) or one line of Python.
• A DataFrame you display becomes a dataset; files you write are shared; `plt.show()` saves a PNG.

To talk to an AI agent instead, connect Amazon Bedrock: set `BEDROCK_MODEL_ID` (Converse with the \
AgentCore code interpreter) or `BEDROCK_AGENT_ID` and `BEDROCK_AGENT_ALIAS_ID` (Bedrock Agents), \
then check with `datathread doctor`."""


def local_agent_help() -> str:
    """What a user of the local-kernel agent sees when a message is neither code nor a command."""
    return f"{LOCAL_AGENT}\n\n{COMMANDS}"
