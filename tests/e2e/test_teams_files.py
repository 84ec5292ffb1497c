"""Teams files and datasets end to end: images inline, files by consent (personal) or signed link
(channels), attachments in, and dataset cards paged by posting what Teams posts for Action.Submit."""

from __future__ import annotations

import base64
import functools
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapters.teams.surface import download_allowed, wants_token
from bot import events as ev
from bot.conversation import Turn
from bot.workspace import Workspace
from tests.fakes.bot_connector import Call
from tests.fakes.scripted_agent import WriteFile
from tests.teams_harness import TeamsHarness, fixture, teams

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

PERSONAL = "a:1Pz8Y2personalchatid-Ada"
CHANNEL_CHAIN = "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def png(width: int, height: int, noise: bool = False) -> bytes:
    image = Image.new("RGB", (width, height), (30, 90, 160))
    if noise:
        image = Image.frombytes("RGB", (width, height), random.Random(7).randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def writes(*files: tuple[str, bytes]) -> Any:
    def script(turn: Turn) -> list[Any]:
        return [*(WriteFile(name, data) for name, data in files), ev.FinalText("Here you go.")]
    return script


def attachments(calls: list[Call], kind: str) -> list[tuple[Call, dict[str, Any]]]:
    """Attachments of ``kind``, without the Files / Workspace button card every finished turn message carries."""
    return [(c, a) for c in calls for a in c.body.get("attachments") or ()
            if a["contentType"] == kind and not files_button_card(a)]


def files_button_card(attachment: dict[str, Any]) -> bool:
    actions = (attachment.get("content") or {}).get("actions") or ()
    titles = [a.get("title") for a in actions]
    return titles in (["Files"], ["Files", "Workspace"]) and not attachment["content"].get("body")


async def test_channel_gets_inline_images_and_signed_links_that_expire_and_resist_tampering(tmp_path: Path) -> None:
    small = png(200, 100)
    async with teams(tmp_path, writes(("chart.png", small), ("report.pdf", PDF), ("big.png", png(2000, 1500)))) as h:
        await h.post(fixture("channel_new_post_mention"))
        calls = await h.turn_done(CHANNEL_CHAIN)
        images = attachments(calls, "image/png")
        assert base64.b64decode(images[0][1]["contentUrl"].split(",", 1)[1]) == small
        scaled = Image.open(io.BytesIO(base64.b64decode(images[1][1]["contentUrl"].split(",", 1)[1])))
        assert max(scaled.size) <= 1024
        links = [c.body["text"] for c in calls if "📎" in (c.body.get("text") or "")]
        assert [link.split("]")[0] for link in links] == ["📎 [report.pdf", "📎 [big.png"]
        url = links[0].split("](", 1)[1].split(")", 1)[0]
        assert url.startswith("http://files.example.test/files/")
        path = url.removeprefix("http://files.example.test")
        got = await h.client.get(path)
        assert got.status == 200 and await got.read() == PDF
        assert "attachment" in got.headers["Content-Disposition"]
        tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
        assert (await h.client.get(tampered)).status == 403
        conversation = h.agent.turns[0].conversation
        workspace = Workspace(conversation.workspace)
        report = workspace.resolve("report.pdf")
        expired = await h.engine.file_link(conversation.key, report, purpose="download", ttl=-5)
        assert (await h.client.get(f"/files/{expired}")).status == 403
        other = await h.engine.file_link(conversation.key, report, purpose="consent", ttl=60)
        assert (await h.client.get(f"/files/{other}")).status == 403  # a consent token is not a link


async def test_personal_chat_offers_files_by_consent_and_uploads_on_accept(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("report.pdf", PDF))) as h:
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL)
        [(offer_call, offer)] = attachments(calls, "application/vnd.microsoft.teams.card.file.consent")
        assert offer["name"] == "report.pdf" and offer["content"]["sizeInBytes"] == len(PDF)
        accept = fixture("file_consent_accept", replyToId=offer_call.returned_id)
        accept["value"]["context"] = offer["content"]["acceptContext"]
        accept["value"]["uploadInfo"]["uploadUrl"] = h.connector.upload_url("report.pdf")
        response = await h.post(accept)
        assert response.status == 200  # the invoke is answered at once
        info = await h.until(lambda c: attachments(c, "application/vnd.microsoft.teams.card.file.info"))
        assert bytes(h.connector.uploads["report.pdf"]) == PDF
        assert info[0][1]["content"]["uniqueId"] == "1150D938-8870-4044-9F2C-5BBDEBA70C9D"
        await h.until(lambda c: [x for x in c if x.method == "PUT" and x.activity_id == offer_call.returned_id])


async def test_a_forged_consent_uploads_nothing(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("report.pdf", PDF))) as h:
        await h.post(fixture("personal_message"))
        await h.turn_done(PERSONAL)
        accept = fixture("file_consent_accept")
        accept["value"]["context"] = {"token": "eyJrIjoiY29uc2VudCJ9.AAAA"}
        accept["value"]["uploadInfo"]["uploadUrl"] = h.connector.upload_url("report.pdf")
        await h.post(accept)
        await h.until(lambda c: [x for x in c if "expired" in (x.body.get("text") or "")])
        assert h.connector.uploads == {}


async def test_attached_files_reach_the_agent_without_leaking_a_token(tmp_path: Path) -> None:
    seen: list[tuple[str, bytes]] = []

    def script(turn: Turn) -> list[Any]:
        seen.extend((a.name, a.path.read_bytes()) for a in turn.attachments)
        return [ev.FinalText("got it")]

    async with teams(tmp_path, script) as h:
        h.connector.files["sales.csv"] = b"region,revenue\nEMEA,10\n"
        h.connector.files["image"] = png(64, 64)
        shared = fixture("personal_file_download_info")
        shared["attachments"][0]["content"]["downloadUrl"] = h.connector.file_url("sales.csv")
        await h.post(shared)
        await h.turn_done(PERSONAL)
        image = fixture("personal_inline_image")
        image["attachments"][0]["contentUrl"] = h.connector.file_url("image")
        await h.post(image)
        await h.until(lambda _: len(seen) == 2)
        assert seen == [("sales.csv", b"region,revenue\nEMEA,10\n"), ("image-1.png", h.connector.files["image"])]
        assert all("Authorization" not in headers for headers in h.connector.file_requests)


def card_of(call: Call) -> dict[str, Any]:
    return next(a["content"] for a in call.body.get("attachments") or () if a["contentType"] == ADAPTIVE)


def card_text(card: dict[str, Any]) -> str:
    return card["body"][0]["text"]


def table_rows(card: dict[str, Any]) -> list[list[str]]:
    table = next(b for b in card["body"] if b["type"] == "Table")
    return [[c["items"][0]["inlines"][0]["text"] for c in row["cells"]] for row in table["rows"][1:]]


def action(card: dict[str, Any], title: str) -> dict[str, Any] | None:
    return next((a for a in card.get("actions", ()) if title in a["title"]), None)


def updates_since(calls: list[Call], before: int, message_id: str) -> list[Call]:
    return [x for x in calls[before:] if x.method == "PUT" and x.activity_id == message_id]


async def click(h: TeamsHarness, card_id: str, value: dict[str, Any], n: int) -> None:
    await h.post(fixture("card_submit_next", id=f"17321826{n:05d}", replyToId=card_id, value=value))


CSV = ("region,revenue\n" + "".join(f"region-{i:02d},{i * 10}\n" for i in range(1, 46))).encode()


async def test_paging_a_dataset_card_to_its_last_row_updates_it_in_place(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("regions.csv", CSV))) as h:
        await h.post(fixture("personal_message"))
        await h.turn_done(PERSONAL)
        [(card_call, _)] = attachments(h.connector.calls, ADAPTIVE)
        card, seen_rows = card_of(card_call), []
        assert "rows 1–20 of 45" in card_text(card) and card["version"] == "1.5"
        for n in range(10):  # loop guard: 3 pages expected
            seen_rows += table_rows(card)
            nxt = action(card, "Next")
            if nxt is None:
                break
            before = len(h.connector.calls)
            await click(h, card_call.returned_id, nxt["data"], n)
            put = await h.until(functools.partial(updates_since, before=before, message_id=card_call.returned_id))
            card = card_of(put[-1])
        assert "rows 41–45 of 45" in card_text(card)
        assert [r[0] for r in seen_rows] == [f"region-{i:02d}" for i in range(1, 46)]
        sort = action(card, "Sort")
        assert sort is not None and sort["type"] == "Action.ShowCard"
        choice = next(c for c in sort["card"]["body"][0]["choices"] if "revenue ↓" in c["title"])
        before = len(h.connector.calls)
        await click(h, card_call.returned_id, {**sort["card"]["actions"][0]["data"],
                                               "datathread_choice": choice["value"]}, 99)
        put = await h.until(lambda c: [x for x in c[before:] if x.method == "PUT"])
        assert table_rows(card_of(put[-1]))[0][0] == "region-45"


async def test_tampered_card_data_gets_a_notice_and_no_rows(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("regions.csv", CSV))) as h:
        await h.post(fixture("personal_message"))
        await h.turn_done(PERSONAL)
        [(card_call, _)] = attachments(h.connector.calls, ADAPTIVE)
        data = action(card_of(card_call), "Next")["data"]  # type: ignore[index]
        body, sig = data["token"].split(".")
        forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==").replace(b',2]', b',3]'))
        before = len(h.connector.calls)
        await click(h, card_call.returned_id, {**data, "token": forged.decode().rstrip("=") + "." + sig}, 1)
        notice = await h.until(lambda c: [x for x in c[before:] if "no longer valid" in (x.body.get("text") or "")])
        assert notice
        assert not [x for x in h.connector.calls[before:] if x.method == "PUT" or attachments([x], ADAPTIVE)]


async def test_an_attachment_over_the_size_cap_is_refused_with_a_notice(tmp_path: Path) -> None:
    async with teams(tmp_path, lambda turn: [ev.FinalText(f"{len(turn.attachments)} files")],
                     DATATHREAD_MAX_UPLOAD_MB="0.001") as h:
        h.connector.files["big.csv"] = b"x" * 5000
        shared = fixture("personal_file_download_info")
        shared["attachments"][0]["content"]["downloadUrl"] = h.connector.file_url("big.csv")
        await h.post(shared)
        calls = await h.turn_done(PERSONAL)
        final = calls[-1].body["text"]
        assert "0 files" in final and "sales.csv" in final and "larger than" in final


def test_only_bot_connector_hosts_get_the_bot_token() -> None:
    assert wants_token("https://smba.trafficmanager.net/emea/72f9/v3/attachments/0-weu/views/original")
    assert wants_token("https://eu.api.botframework.com/v3/attachments/1")
    assert not wants_token("https://contoso-my.sharepoint.com/_layouts/15/download.aspx?tempauth=x")
    assert not wants_token("https://smba.trafficmanager.net.evil.example/v3/attachments/1")
    assert not wants_token("https://evilsmba.trafficmanager.net/v3/attachments/1")
    assert not wants_token("https://evilbotframework.com/v3/attachments/1")
    assert not wants_token("http://smba.trafficmanager.net/v3/attachments/1")


def test_attachments_are_fetched_only_from_microsoft_hosts_or_the_activity_s_own_service() -> None:
    service = "https://smba.trafficmanager.net/emea/"
    for url in ("https://contoso-my.sharepoint.com/_layouts/15/download.aspx?tempauth=x",
                "https://us-api.asm.skype.com/v1/objects/0-eus-d1/views/imgo",
                "https://smba.trafficmanager.net/emea/v3/attachments/1/views/original"):
        assert download_allowed(url, service, local=False), url
    for url in ("http://169.254.169.254/latest/meta-data/", "http://contoso-my.sharepoint.com/f.csv",
                "https://evilsharepoint.com/f.csv", "https://evilsmba.trafficmanager.net/v3/attachments/1",
                "http://127.0.0.1:8080/admin", "file:///etc/passwd"):
        assert not download_allowed(url, service, local=False), url
    # Authenticated, the activity's serviceUrl is signed by the Bot Framework: its origin is trusted.
    assert download_allowed("https://connector.example.test/v3/attachments/1", "https://connector.example.test/",
                            local=False)
    assert not download_allowed("https://connector.example.test:8443/x", "https://connector.example.test/",
                                local=False)
    # Local mode (Bot Framework Emulator): loopback only; a serviceUrl anyone could write is not trusted.
    assert download_allowed("http://localhost:9000/x", "http://localhost:52731/", local=True)
    assert download_allowed("http://[::1]:9000/x", "http://localhost:52731/", local=True)
    assert not download_allowed("http://169.254.169.254/latest/meta-data/", "http://169.254.169.254/", local=True)


async def test_a_multi_megabyte_attachment_arriving_in_small_pieces_reaches_the_agent_whole(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def script(turn: Turn) -> list[Any]:
        seen.extend(a.path.read_bytes() for a in turn.attachments)
        return [ev.FinalText("got it")]

    data = random.Random(3).randbytes(3 * 1024 * 1024 + 17)
    async with teams(tmp_path, script) as h:
        h.connector.files["big.csv"] = data
        h.connector.file_chunk = 100_000
        shared = fixture("personal_file_download_info")
        shared["attachments"][0]["content"]["downloadUrl"] = h.connector.file_url("big.csv")
        await h.post(shared)
        await h.turn_done(PERSONAL)
        assert len(seen) == 1 and len(seen[0]) == len(data)
        assert seen[0] == data


async def test_an_attachment_link_to_an_internal_address_is_not_fetched(tmp_path: Path) -> None:
    async with teams(tmp_path, lambda turn: [ev.FinalText(f"{len(turn.attachments)} files")]) as h:
        shared = fixture("personal_file_download_info")
        shared["attachments"][0]["content"]["downloadUrl"] = "http://169.254.169.254/latest/meta-data/iam/"
        await h.post(shared)
        calls = await h.turn_done(PERSONAL)
        final = calls[-1].body["text"]
        assert "0 files" in final and "sales.csv" in final and "does not point to Microsoft Teams" in final


async def test_a_declined_file_offer_is_marked_and_nothing_is_uploaded(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("report.pdf", PDF))) as h:
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL)
        [(offer_call, offer)] = attachments(calls, "application/vnd.microsoft.teams.card.file.consent")
        decline = fixture("file_consent_accept", replyToId=offer_call.returned_id)
        decline["value"] = {"type": "fileUpload", "action": "decline", "context": offer["content"]["declineContext"]}
        assert (await h.post(decline)).status == 200
        put = await h.until(lambda c: [x for x in c if x.method == "PUT" and x.activity_id == offer_call.returned_id])
        assert "declined" in put[0].body["text"]
        assert h.connector.uploads == {}


async def test_a_file_offer_from_before_new_no_longer_opens_a_file(tmp_path: Path) -> None:
    async with teams(tmp_path, writes(("report.pdf", PDF))) as h:
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL)
        [(offer_call, offer)] = attachments(calls, "application/vnd.microsoft.teams.card.file.consent")
        await h.post(fixture("personal_message", id="1732180443999", text="new"))
        await h.until(lambda c: [x for x in c if "fresh conversation" in (x.body.get("text") or "")])
        # The new conversation makes a file of the same name: the old offer must not deliver it.
        await h.post(fixture("personal_message", id="1732180444000"))
        await h.until(lambda c: len(attachments(c, "application/vnd.microsoft.teams.card.file.consent")) == 2)
        accept = fixture("file_consent_accept", replyToId=offer_call.returned_id)
        accept["value"]["context"] = offer["content"]["acceptContext"]
        accept["value"]["uploadInfo"]["uploadUrl"] = h.connector.upload_url("report.pdf")
        await h.post(accept)
        await h.until(lambda c: [x for x in c if "expired" in (x.body.get("text") or "")])
        assert h.connector.uploads == {}


async def test_a_detailed_image_is_scaled_under_a_megabyte(tmp_path: Path) -> None:
    noisy = png(1000, 1000, noise=True)
    assert len(noisy) > 1_000_000
    async with teams(tmp_path, writes(("noisy.png", noisy))) as h:
        await h.post(fixture("channel_new_post_mention"))
        calls = await h.turn_done(CHANNEL_CHAIN)
        [(_, image)] = attachments(calls, "image/png")
        assert len(image["contentUrl"]) < 1_000_000
        assert "scaled down" in next(c.body["text"] for c in calls if attachments([c], "image/png"))
        assert any("📎 [noisy.png" in (c.body.get("text") or "") for c in calls)  # the full-size file follows


async def test_a_wide_dataset_card_fits_teams_and_its_buttons_carry_only_tokens(tmp_path: Path) -> None:
    columns = [f"measurement_column_with_a_long_name_{i:02d}" for i in range(50)]
    rows = [",".join(f"r{r}c{c}-" + "lorem ipsum dolor sit amet " * 12 for c in range(50)) for r in range(30)]
    wide = (",".join(columns) + "\n" + "\n".join(rows) + "\n").encode()
    async with teams(tmp_path, writes(("wide.csv", wide))) as h:
        await h.post(fixture("personal_message"))
        calls = await h.turn_done(PERSONAL)
        [(card_call, attachment)] = attachments(calls, ADAPTIVE)
        assert len(json.dumps(attachment["content"], ensure_ascii=False).encode()) <= 25_000
        assert len(json.dumps(card_call.body, ensure_ascii=False).encode()) < 28_000  # the whole activity
        card = attachment["content"]
        assert card["fallbackText"] and "rows 1–20 of 30" in card_text(card)
        table = next(b for b in card["body"] if b["type"] == "Table")
        assert table["fallback"]["type"] == "TextBlock" and len(table_rows(card)) >= 1
        submits = [a for a in card["actions"] if a["type"] == "Action.Submit"]
        submits += [a for s in card["actions"] if s["type"] == "Action.ShowCard" for a in s["card"]["actions"]]
        assert submits and all(set(a["data"]) <= {"datathread", "token"} for a in submits)
        assert all("lorem" not in json.dumps(a["data"]) for a in submits)
        nxt = action(card, "Next")
        assert nxt is not None
        before = len(h.connector.calls)
        await click(h, card_call.returned_id, nxt["data"], 1)
        put = await h.until(functools.partial(updates_since, before=before, message_id=card_call.returned_id))
        assert "rows 21–30 of 30" in card_text(card_of(put[-1]))


def end_buttons(calls: list[Call]) -> list[list[str]]:
    """The titles of each Files / Workspace card that ends a turn."""
    return [[a.get("title") for a in att["content"]["actions"]] for c in calls
            for att in c.body.get("attachments") or () if files_button_card(att)]


async def test_the_workspace_link_comes_in_the_personal_chat_and_never_into_a_channel(tmp_path: Path) -> None:
    async with teams(tmp_path, writes()) as h:
        h.engine.web.serve_at("http://dt.example.test")
        await h.post(fixture("personal_message"))
        assert end_buttons(await h.turn_done(PERSONAL)) == [["Files", "Workspace"]]
        await h.post(fixture("personal_message", id="personal-workspace", text="workspace"))
        [reply] = await h.until(lambda c: [x for x in h.to(PERSONAL) if "/w/open#" in json.dumps(x.body)])
        assert "http://dt.example.test/w/open#" in json.dumps(reply.body)
        await h.post(fixture("channel_new_post_mention"))
        calls = await h.turn_done(CHANNEL_CHAIN)
        assert end_buttons(calls) == [["Files"]]  # a channel reply is public: no link is offered there
        assert not [x for x in h.to(CHANNEL_CHAIN) if "/w/open#" in json.dumps(x.body)]
