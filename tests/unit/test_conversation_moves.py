"""``ConversationMoves``: which replica's kernel holds a conversation's variables, on a real state
store shared by two "replicas" (two ``ConversationMoves`` with different ids)."""

from __future__ import annotations

from pathlib import Path

from bot.conversation import Conversation
from bot.conversation_moves import ConversationMoves, keeps_variables_here
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore


async def test_only_a_turn_that_moved_to_another_replica_is_told_and_a_stale_kernel_is_released(
        tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "state.db", tmp_path / "workspaces")
    released: list[tuple[str, str]] = []  # (replica, conversation) whose local kernel was let go

    def replica(name: str) -> ConversationMoves:
        async def release(conversation: Conversation) -> None:
            released.append((name, conversation.id))
        return ConversationMoves(state, name, release)

    a, b = replica("A"), replica("B")
    try:
        conversation = await state.start_conversation(ThreadKey("teams", "t", "c", "1"), "U1")
        assert [await a.arrived(conversation), await a.arrived(conversation)] == [False, False]  # first turn, then home
        assert [await b.arrived(conversation), await b.arrived(conversation)] == [True, False]  # moved: told once
        assert await a.arrived(conversation) is True  # back on A, whose kernel is older than B's turns
        assert released == [("B", conversation.id), ("A", conversation.id)]
    finally:
        await state.aclose()


def test_only_backends_that_say_so_keep_variables_on_this_replica() -> None:
    class Remote:
        pass

    class Local:
        variables_here = True

    assert keeps_variables_here(Local()) and not keeps_variables_here(Remote())
