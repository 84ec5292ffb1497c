"""Tokens, workspace safety, presenter, terminal rendering, logs and agent choice: the pure parts of the core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import events as ev
from bot.datasets.model import Column, DatasetMeta, Page
from bot.intent_tokens import IntentSealer
from bot.intents import Intent
from bot.messages import ThreadKey
from bot.presenter import MAX_STEP_BLOCKS, present_page, present_turn
from bot.reply import Button, Buttons, CodeBlock, Markdown, Notice, Reply, Select, Status, Table
from bot.tokens import TokenSigner
from bot.workspace import PRIVATE_DIR, UnsafePath, Workspace, human_size, safe_filename
from renderers.terminal import render, table_lines

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")


def test_token_round_trip_and_tamper() -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.seal({"d": "abc", "p": 2})
    assert signer.open(token) == {"d": "abc", "p": 2}
    body, sig = token.split(".")
    assert signer.open(body + "." + sig[::-1]) is None
    assert signer.open(token.replace(body, body[:-2] + "xx")) is None
    assert TokenSigner(b"other-secret-0123456789").open(token) is None
    for junk in ("", ".", "a.b", "no-dot", "é.é"):
        assert signer.open(junk) is None


def test_thread_key_digest_is_stable_and_safe() -> None:
    assert KEY.digest == ThreadKey("slack", "T1", "C1", "1700000000.000100").digest
    assert KEY.digest != ThreadKey("slack", "T1", "C1", "1700000000.000101").digest
    assert KEY.digest.isalnum() and len(KEY.digest) == 24


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "sub/../../../etc"])
def test_workspace_refuses_escapes(tmp_path: Path, name: str) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(UnsafePath):
        ws.resolve(name)


def test_workspace_symlink_out_is_refused_and_hidden(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    (tmp_path / "secret").write_text("s")
    (ws.root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePath):
        ws.resolve("link")
    assert ws.files() == []


async def test_workspace_write_sanitises_and_never_overwrites(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    a = await ws.write("../../évil name.csv", b"1")
    b = await ws.write("../../évil name.csv", b"2")
    assert a.parent == ws.root and b.parent == ws.root and a != b
    assert a.name == "evil_name.csv" and a.read_bytes() == b"1" and b.read_bytes() == b"2"
    assert [f.name for f in ws.files()] == ["evil_name-2.csv", "evil_name.csv"]
    (ws.root / PRIVATE_DIR).mkdir()
    (ws.root / PRIVATE_DIR / "x").write_text("hidden")
    assert len(ws.files()) == 2


def test_safe_filename_and_sizes() -> None:
    assert safe_filename("C:\\Users\\me\\data (1).xlsx") == "data_1_.xlsx"
    assert safe_filename("...") == "file"
    assert human_size(512) == "512 B" and human_size(2_100_000) == "2.1 MB"


def test_turn_presents_events_in_order_with_answer_merged() -> None:
    reply = present_turn(
        [ev.Rationale("I will "), ev.Rationale("compute."), ev.CodeStarted("x = 1\nx"), ev.CodeOutput("1\n"),
         ev.CodeOutput("2\n"), ev.CodeError("ValueError", "bad", "Cell In[1]\n----> 1 x\nValueError: bad"),
         ev.Notice("took long", "warning"), ev.FinalText("It "), ev.FinalText("is 1.")],
        "done", 1.5,
    )
    kinds = [type(b).__name__ for b in reply.blocks]
    assert kinds == ["Status", "Markdown", "CodeBlock", "CodeBlock", "CodeBlock", "Notice", "Markdown"]
    assert reply.blocks[1] == Markdown("I will compute.")
    assert reply.blocks[3] == CodeBlock("1\n2", "output")
    error = reply.blocks[4]
    assert isinstance(error, CodeBlock) and error.text.split("\n")[0] == "ValueError: bad"
    assert error.text.count("ValueError: bad") == 1
    assert reply.blocks[-1] == Markdown("It is 1.") and reply.summary == "It is 1."
    assert reply.blocks[0] == Status("Done in 1.5 s", "done", 1.5)


def test_long_output_keeps_its_start_and_end_and_counts_the_rest() -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    [_, block] = present_turn([ev.CodeOutput(text)], "working", 0.1).blocks
    assert isinstance(block, CodeBlock) and block.text.startswith("line 0\n") and block.text.endswith("line 1999")
    lines = block.text.split("\n")
    marker = next(line for line in lines if "not shown" in line)
    shown = [line for line in lines if line.startswith("line ")]
    assert int(marker.split()[1].replace(",", "")) == 2000 - len(shown)  # every hidden line is counted
    assert len(block.text) <= 2600


def test_many_steps_are_collapsed() -> None:
    events = [e for i in range(40) for e in (ev.CodeStarted(f"step({i})"), ev.CodeOutput(f"{i}\n"))]
    blocks = present_turn(events, "done", 1.0).blocks
    assert sum(isinstance(b, CodeBlock) for b in blocks) == MAX_STEP_BLOCKS
    assert any(isinstance(b, Notice) and "earlier" in b.text for b in blocks)
    assert blocks[-1] == CodeBlock("39", "output")


def _meta(rows: int) -> DatasetMeta:
    now = datetime.now(UTC)
    return DatasetMeta("ds1", "sales", (Column("region", "str"), Column("revenue", "float")), rows, KEY, "U1",
                       now, now + timedelta(hours=6))


def test_page_buttons_follow_position() -> None:
    sealer = IntentSealer(TokenSigner(b"k" * 32))

    def seal(intent: Intent) -> str:
        return sealer.seal(KEY, intent)

    first = present_page(Page(_meta(45), 1, 20, 0, (("a", "1"),) * 20), seal)
    last = present_page(Page(_meta(45), 3, 20, 40, (("a", "1"),) * 5), seal)
    single = present_page(Page(_meta(5), 1, 20, 0, (("a", "1"),) * 5), seal)

    def labels(reply: Reply) -> list[str]:
        return [i.label for b in reply.blocks if isinstance(b, Buttons) for i in b.items]

    assert labels(first)[:2] == ["Next ▶", "Sort"] and "◀ Prev" not in labels(first)
    assert labels(last)[0] == "◀ Prev" and "Next ▶" not in labels(last)
    assert "Next ▶" not in labels(single) and "◀ Prev" not in labels(single)
    assert first.blocks[0] == Markdown("**sales** · rows 1–20 of 45 · 2 columns")
    assert last.blocks[0] == Markdown("**sales** · rows 41–45 of 45 · 2 columns")
    charts = next(i for b in first.blocks if isinstance(b, Buttons) for i in b.items
                  if isinstance(i, Select) and i.kind == "chart")
    assert [o.label for o in charts.options][:2] == ["bar: region × revenue", "hist: revenue"]
    assert all(isinstance(i, (Button, Select)) for b in first.blocks if isinstance(b, Buttons) for i in b.items)


def test_terminal_table_aligns_numbers_and_counts_hidden_columns() -> None:
    lines = table_lines(Table(("name", "n"), (("alpha", "1"), ("b", "1,234")), (False, True)), width=80)
    assert lines[3] == "  │ alpha │     1 │" and lines[4] == "  │ b     │ 1,234 │"
    wide = Table(tuple(f"column_{i}" for i in range(30)), (tuple("x" * 10 for _ in range(30)),))
    assert "more columns" in table_lines(wide, width=80)[-1]


def test_terminal_render_has_no_escapes_and_status_last() -> None:
    text = render(present_turn([ev.CodeStarted("print(1)"), ev.CodeOutput("1\n")], "done", 0.2))
    assert "\x1b" not in text and text.splitlines()[-1] == "  ✓ done in 0.2 s"


def test_every_token_fits_a_slack_option_value_even_with_long_names() -> None:
    now = datetime.now(UTC)
    long_names = tuple(Column("a rather long column name about quarterly revenue " * 3 + str(i), "float")
                       for i in range(30))
    meta = DatasetMeta("Xq3vW0rT9yZa8bC7dE6fGh", "n" * 200, long_names, 10**9, KEY, "U1", now, now)
    page = Page(meta, 5_000_000, 100, 499_999_900, (("1",) * 30,) * 3)
    sealer = IntentSealer(TokenSigner(b"k" * 32))
    reply = present_page(page, lambda intent: sealer.seal(KEY, intent))
    tokens = [t for b in reply.blocks if isinstance(b, Buttons) for i in b.items
              for t in ([i.token] if isinstance(i, Button) else [o.token for o in i.options])]
    assert len(tokens) > 50 and max(map(len, tokens)) <= 150
    assert all(sealer.open(t, KEY, "U1") for t in tokens)
    other = ThreadKey("slack", "T1", "C1", "1700000000.000200")
    assert not any(sealer.open(t, other, "U1") for t in tokens)


def test_logs_never_show_tokens() -> None:
    import logging

    from bot.logs import RedactingFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "calling %s with Authorization: Bearer abc.def-123 and token=xyz789 for %s",
                               ("xoxb-1234-5678-abcdef", "xapp-1-A1-999"), None)
    line = RedactingFormatter("%(message)s").format(record)
    for secret in ("1234-5678-abcdef", "abc.def-123", "xyz789", "A1-999"):
        assert secret not in line
    assert line.startswith("calling xoxb…[redacted]")


@pytest.mark.parametrize(("env", "agent"), [
    ({}, "kernel"),
    ({"BEDROCK_MODEL_ID": "m"}, "converse"),
    ({"BEDROCK_AGENT_ID": "A", "BEDROCK_AGENT_ALIAS_ID": "B", "BEDROCK_MODEL_ID": "m"}, "bedrock-agents"),
    ({"BEDROCK_AGENT_ID": "A"}, "bedrock-agents"),  # half-configured: its config names what is missing
    ({"DATATHREAD_AGENT": "kernel", "BEDROCK_MODEL_ID": "m"}, "kernel"),
    # Wave 1's names stay accepted as aliases.
    ({"DATATHREAD_AGENT": "local", "BEDROCK_MODEL_ID": "m"}, "kernel"),
    ({"DATATHREAD_AGENT": "bedrock"}, "converse"),
    ({"DATATHREAD_AGENT": "bedrock-agent"}, "bedrock-agents"),
])
def test_agent_choice_from_environment(env: dict[str, str], agent: str) -> None:
    from bot.config import Settings

    assert Settings.from_env(env).agent == agent


def test_an_unknown_agent_name_lists_the_choices() -> None:
    from bot.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="kernel, bedrock-agents, converse"):
        Settings.from_env({"DATATHREAD_AGENT": "gpt"})


def test_bad_settings_name_the_variable() -> None:
    from bot.config import ConfigError, Settings

    for env, name in (({"DATATHREAD_PAGE_SIZE": "many"}, "DATATHREAD_PAGE_SIZE"),
                      ({"DATATHREAD_RETENTION_HOURS": "-1"}, "DATATHREAD_RETENTION_HOURS"),
                      ({"DATATHREAD_AGENT": "gpt"}, "DATATHREAD_AGENT")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env)


def test_steps_are_marked_when_there_are_several() -> None:
    one = present_turn([ev.Rationale("a", step="t-0"), ev.CodeStarted("x", step="t-0")], "done", 1.0)
    assert not any(isinstance(b, Notice) for b in one.blocks)
    two = present_turn([ev.Rationale("a", step="t-0"), ev.CodeStarted("x", step="t-0"),
                        ev.Rationale("b", step="t-1"), ev.CodeOutput("1\n", step="t-1"), ev.FinalText("done")],
                       "done", 1.0)
    assert [type(b).__name__ for b in two.blocks] == [
        "Status", "Markdown", "CodeBlock", "Notice", "Markdown", "CodeBlock", "Markdown"]
    assert two.blocks[3] == Notice("Step 2")


def test_the_console_hint_names_the_typed_commands_the_buttons_stand_for() -> None:
    sealer = IntentSealer(TokenSigner(b"k" * 32))

    def hint(page: Page) -> str:
        return render(present_page(page, lambda intent: sealer.seal(KEY, intent))).splitlines()[-1].strip()

    rows = (("a", "1"),) * 20
    charts = "chart <line|bar|scatter|hist|box> <x> [y]"
    assert hint(Page(_meta(45), 1, 20, 0, rows)) == f"[n]ext  sort <column> [desc]  {charts}  download [csv|parquet]"
    assert hint(Page(_meta(45), 2, 20, 20, rows)).startswith("[p]rev  [n]ext  sort")
    assert hint(Page(_meta(45), 3, 20, 40, rows[:5])).startswith("[p]rev  sort")
    assert hint(Page(_meta(1), 1, 20, 0, rows[:1])) == f"{charts}  download [csv|parquet]"
