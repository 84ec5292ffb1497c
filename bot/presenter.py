"""Pure presentation: accumulated turn events, dataset pages and listings -> neutral ``Reply``.

The whole turn is re-rendered from its events every time (never patched), so a surface that falls
back from streaming to editing a message can always send the full current state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from bot import events as ev
from bot.datasets.model import ChartData, ChartSpec, DatasetMeta, Page, SortSpec
from bot.intents import (
    COLUMNS_PER_PAGE,
    ColumnOrder,
    Download,
    DrawChart,
    Feedback,
    Intent,
    ListFiles,
    OpenWorkspace,
    PostFile,
    ShowPage,
    Stop,
)
from bot.reply import (
    Block,
    Button,
    Buttons,
    Chart,
    CodeBlock,
    Markdown,
    Notice,
    Option,
    Reply,
    Select,
    Status,
    StepStatus,
    Table,
)
from bot.steps import group_steps
from bot.workspace import WorkspaceFile, human_size

#: Lines of code shown before the rest is collapsed.
CODE_LINES = 40
#: Characters of output shown per output block: its start and, mostly, its end (where results are).
OUTPUT_CHARS = 2500
OUTPUT_HEAD_CHARS = 600
#: Code / output blocks kept in one turn message; earlier steps are summarised.
MAX_STEP_BLOCKS = 24
#: Options in one select menu (Slack's limit is 100).
MAX_OPTIONS = 100

TurnState = Literal["working", "done", "failed", "stopped"]
#: The status of a turn's last step, by the turn's state (the earlier steps are complete).
_LAST_STEP: dict[TurnState, StepStatus] = {"working": "in_progress", "done": "complete", "failed": "error",
                                           "stopped": "error"}
#: Seals an intent into a button token (bound to the thread by the engine).
Sealer = Callable[[Intent], str]


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def _clip_code(code: str) -> CodeBlock:
    lines = code.rstrip("\n").splitlines()
    if len(lines) <= CODE_LINES:
        return CodeBlock("\n".join(lines), "code", "python")
    return CodeBlock("\n".join(lines[:CODE_LINES]), "code", "python", omitted=len(lines) - CODE_LINES)


def _clip_output(text: str, role: Literal["output", "error"], limit: int = OUTPUT_CHARS) -> CodeBlock:
    """Output or error text within ``limit`` characters: its first lines and its last lines (where a
    run's result usually is), with a marker counting the lines in between."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return CodeBlock(text, role)
    head = text[: min(OUTPUT_HEAD_CHARS, limit // 4)]
    head = head[: head.rfind("\n")] if "\n" in head else head
    tail = text[-(limit - len(head)) :]
    tail = tail[tail.find("\n") + 1 :] if "\n" in tail[:200] else tail
    hidden = text[len(head) : len(text) - len(tail)].strip("\n").count("\n") + 1
    return CodeBlock(f"{head}\n… {hidden:,} lines not shown …\n{tail}", role)


def dataset_line(meta: DatasetMeta) -> str:
    return f'dataset "{meta.name}" · {meta.rows:,} rows × {len(meta.columns)} columns'


@dataclass
class _Builder:
    blocks: list[Block]
    output: list[str]
    answer: list[str]
    output_chars: int
    answer_at: int | None = None

    def flush_output(self) -> None:
        if self.output:
            self.blocks.append(_clip_output("".join(self.output), "output", self.output_chars))
            self.output.clear()


def present_turn(
    events: Sequence[ev.AgentEvent], state: TurnState, elapsed: float | None = None, output_chars: int = OUTPUT_CHARS
) -> Reply:
    """The turn message: status, then rationale, code, output, errors and notices in order, then the answer.

    Each output block keeps at most ``output_chars`` characters (its start and its end).
    """
    b = _Builder([], [], [], output_chars)
    steps: list[str] = []
    for event in events:
        if not isinstance(event, ev.CodeOutput):
            b.flush_output()
        step = getattr(event, "step", None)
        if step is not None and step not in steps:
            steps.append(step)
            if len(steps) > 1:  # a marker between an agent's steps (Bedrock traceIds); none for one step
                b.blocks.append(Notice(f"Step {len(steps)}"))
        match event:
            case ev.Rationale(text=text):
                if b.blocks and isinstance(b.blocks[-1], Markdown) and b.answer_at != len(b.blocks) - 1:
                    b.blocks[-1] = Markdown(b.blocks[-1].text + text)
                else:
                    b.blocks.append(Markdown(text))
            case ev.CodeStarted(code=code):
                b.blocks.append(_clip_code(code))
            case ev.CodeOutput(text=text):
                b.output.append(text)
            case ev.CodeError(ename=ename, evalue=evalue, traceback=tb):
                # The headline first: it is what a reader needs; the traceback says where.
                head = f"{ename}: {evalue}" if evalue else ename
                frames = [line for line in tb.rstrip().split("\n") if line.strip() and line.strip() != head]
                b.blocks.append(_clip_output("\n".join([head, *frames]), "error", output_chars))
            case ev.FileProduced():
                pass  # files are uploaded into the thread by the engine, not listed twice
            case ev.DatasetProduced(dataset=meta):
                b.blocks.append(Notice(f"✓ {dataset_line(meta)}"))
            case ev.Notice(text=text, level=level):
                b.blocks.append(Notice(text, level))
            case ev.FinalText(text=text):
                if b.answer_at is None:
                    b.answer_at = len(b.blocks)
                    b.blocks.append(Markdown(""))
                b.answer.append(text)
            case ev.TurnFailed(message=message):
                b.blocks.append(Notice(message, "error"))
            case _:
                raise TypeError(f"unhandled agent event {event!r}")
    b.flush_output()
    if b.answer_at is not None:
        b.blocks[b.answer_at] = Markdown("".join(b.answer))
    blocks = _collapse_steps(b.blocks)
    status = {
        "working": Status(f"Working… {_elapsed(elapsed)}".rstrip(), "working", elapsed),
        "done": Status(f"Done in {_elapsed(elapsed)}" if elapsed is not None else "Done", "done", elapsed),
        "failed": Status("Failed", "failed", elapsed),
        "stopped": Status("Stopped", "failed", elapsed),
    }[state]
    answer = "".join(b.answer).strip()
    summary = answer[:200] or status.text
    shown = (status, *blocks)
    answer_block = b.blocks[b.answer_at] if b.answer_at is not None else None
    answer_at = next((i for i, blk in enumerate(shown) if blk is answer_block), None)
    return Reply(shown, summary, group_steps(shown, answer_at, last=_LAST_STEP[state]))


def _collapse_steps(blocks: list[Block]) -> list[Block]:
    steps = [i for i, blk in enumerate(blocks) if isinstance(blk, CodeBlock)]
    if len(steps) <= MAX_STEP_BLOCKS:
        return blocks
    drop = set(steps[: len(steps) - MAX_STEP_BLOCKS])
    first = min(drop)
    kept: list[Block] = [blk for i, blk in enumerate(blocks) if i not in drop]
    kept.insert(first, Notice(f"… {len(drop)} earlier code and output blocks not shown"))
    return kept


def chart_options(meta: DatasetMeta) -> list[ChartSpec]:
    """Sensible charts for a table: line / scatter / bar of numeric columns, hist / box of each."""
    numeric = [c.name for c in meta.columns if c.numeric]
    temporal = [c.name for c in meta.columns if c.type in ("datetime", "date")]
    categorical = [c.name for c in meta.columns if c.type in ("str", "bool")]
    x_axis = (temporal or categorical or numeric or [""])[0]
    specs: list[ChartSpec] = []
    for y in numeric:
        if x_axis and x_axis != y:
            kind: Literal["line", "bar"] = "bar" if x_axis in categorical else "line"
            specs.append(ChartSpec(kind, x_axis, y))
    for y in numeric:
        specs.append(ChartSpec("hist", y))
    if len(numeric) >= 2:
        specs.append(ChartSpec("scatter", numeric[0], numeric[1]))
    for y in numeric:
        specs.append(ChartSpec("box", y))
    return specs[:MAX_OPTIONS]


def chart_label(spec: ChartSpec) -> str:
    return f"{spec.kind}: {spec.x} × {spec.y}" if spec.y else f"{spec.kind}: {spec.x}"


def present_page(page: Page, seal: Sealer, columns: int = 1) -> Reply:
    """A dataset message: title with the row range, the page as a table, and its buttons.

    A dataset wider than ``COLUMNS_PER_PAGE`` shows block ``columns`` (from 1) of its columns, with
    buttons to the neighbouring blocks, so any page fits one message on every surface."""
    meta = page.dataset
    names = [c.name for c in meta.columns]
    blocks = max(1, -(-len(names) // COLUMNS_PER_PAGE))
    columns = min(max(1, columns), blocks)
    first, last = (columns - 1) * COLUMNS_PER_PAGE, min(columns * COLUMNS_PER_PAGE, len(names))
    sort = f" · sorted by {page.sort.column} {'desc' if page.sort.descending else 'asc'}" if page.sort else ""
    if page.rows:
        rng = f"rows {page.start + 1:,}–{page.end:,} of {meta.rows:,}"
    else:
        rng = f"no rows (0 of {meta.rows:,})"
    shape = f"{len(names):,} columns" if blocks == 1 else f"columns {first + 1:,}–{last:,} of {len(names):,}"
    title = Markdown(f"**{meta.name}** · {rng} · {shape}{sort}")
    table = Table(
        tuple(names[first:last]), tuple(row[first:last] for row in page.rows),
        tuple(c.numeric for c in meta.columns[first:last]),
    )

    order = None
    if page.sort and page.sort.column in names:
        order = ColumnOrder(names.index(page.sort.column), page.sort.descending)
    shown = ShowPage(meta.id, page.number, order, columns)

    def button(label: str, intent: Intent) -> Button:
        return Button(label, intent, seal(intent))

    def option(label: str, intent: Intent) -> Option:
        return Option(label, intent, seal(intent))

    items: list[Button | Select] = []
    if page.has_prev:
        items.append(button("◀ Prev", ShowPage(meta.id, page.number - 1, order, columns)))
    if page.has_next:
        items.append(button("Next ▶", ShowPage(meta.id, page.number + 1, order, columns)))
    if columns > 1:
        items.append(button("◀ Columns", ShowPage(meta.id, page.number, order, columns - 1)))
    if columns < blocks:
        items.append(button("Columns ▶", ShowPage(meta.id, page.number, order, columns + 1)))
    sorts = [  # the columns on show
        option(f"{c.name} {arrow}", ShowPage(meta.id, 1, ColumnOrder(i, desc), columns))
        for i, c in enumerate(meta.columns) if first <= i < last
        for desc, arrow in ((False, "↑"), (True, "↓"))
    ][:MAX_OPTIONS]
    if meta.rows > 1 and sorts:
        items.append(Select("Sort", tuple(sorts)))
    charts = [
        option(chart_label(spec), DrawChart(meta.id, spec.kind, names.index(spec.x),
                                            names.index(spec.y) if spec.y else None))
        for spec in chart_options(meta)
    ]
    if charts:
        items.append(Select("Chart", tuple(charts)))
    items.append(button("Download CSV", Download(meta.id, "csv")))
    items.append(button("Parquet", Download(meta.id, "parquet")))
    return Reply((title, table, Buttons(tuple(items), shown)), f"{meta.name}: {rng}")


def present_sorting(meta: DatasetMeta, sort: SortSpec, number: int) -> Reply:
    """A dataset message while page ``number`` waits for the full order of ``sort``'s column (the
    message is replaced by the page when it is ready)."""
    direction = "desc" if sort.descending else "asc"
    title = Markdown(f"**{meta.name}** · {meta.rows:,} rows · sorted by {sort.column} {direction}")
    status = Status(f"Sorting {meta.rows:,} rows by {sort.column}… page {number:,} shows here when ready.",
                    "working")
    return Reply((title, status), f"{meta.name}: sorting by {sort.column}")


def present_datasets(datasets: Sequence[DatasetMeta]) -> Reply:
    if not datasets:
        return Reply((Notice("No datasets in this conversation yet. Display a DataFrame or write a CSV."),),
                     "No datasets")
    lines = [
        f"• **{d.name}** — {d.rows:,} rows × {len(d.columns)} columns · expires {d.expires:%H:%M} UTC"
        for d in datasets
    ]
    return Reply((Markdown("**Datasets**\n" + "\n".join(lines)),), f"{len(datasets)} datasets")


def file_key(name: str) -> str:
    """A short stable key for a workspace file name (names can be longer than a button value allows)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def present_files(files: Sequence[WorkspaceFile], seal: Sealer, limit: int = 40) -> Reply:
    """The workspace listing with sizes, each file with a button that posts it into the thread."""
    if not files:
        return Reply((Notice("The workspace is empty."),), "The workspace is empty")
    total = sum(f.size for f in files)
    lines = [f"• `{f.name}` — {human_size(f.size)}" for f in files[:limit]]
    more = f"\n… and {len(files) - limit} more" if len(files) > limit else ""
    intents = [(f.name[:70], PostFile(file_key(f.name))) for f in files[:MAX_OPTIONS]]
    options = tuple(Option(label, intent, seal(intent)) for label, intent in intents)
    return Reply(
        (
            Markdown(f"**Workspace** · {len(files)} files · {human_size(total)}\n" + "\n".join(lines) + more),
            Buttons((Select("Post a file here", options),)),
        ),
        f"{len(files)} files",
    )


def stop_button(seal: Sealer) -> Buttons:
    """The "Stop" button a running turn carries where the platform has no Stop of its own."""
    return Buttons((Button("Stop", Stop(), seal(Stop())),))


def feedback_buttons(seal: Sealer, turn: str) -> Buttons:
    """👍 / 👎 under a finished answer; each carries the turn it rates (renderers that have a
    native feedback control, like Slack's ``feedback_buttons``, show them as that)."""
    return Buttons((Button("👍", Feedback(True, turn), seal(Feedback(True, turn))),
                    Button("👎", Feedback(False, turn), seal(Feedback(False, turn)))))


def files_button(seal: Sealer, workspace: bool = True) -> Buttons:
    """The buttons that end a turn message, their intents sealed for the thread: "Files", and
    "Workspace" where ``workspace`` (the surface can hand its owner the link privately)."""
    files = Button("Files", ListFiles(), seal(ListFiles()))
    if not workspace:
        return Buttons((files,))
    return Buttons((files, Button("Workspace", OpenWorkspace(), seal(OpenWorkspace()))))


def present_workspace_link(url: str, hours: float) -> Reply:
    """The owner's private link to the conversation's workspace page."""
    text = (f"[Open this conversation's workspace]({url}) — files, datasets and live progress in your browser. "
            f"The link is for you only and works for {hours:g} hours; `workspace revoke` voids it.")
    return Reply((Markdown(text),), "Your workspace link")


def present_chart(data: ChartData) -> Reply:
    """A chart sent as data for the platform to draw; the summary (notifications, screen readers)
    says what it shows."""
    return Reply((Chart(data),), f"Chart: {data.title} ({len(data.categories)} values)")
