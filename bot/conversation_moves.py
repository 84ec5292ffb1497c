"""Saying once that a conversation's variables were reset when its turns move to another replica.

With local kernels (the kernel agent, or Converse on the local executor) a conversation's variables
live in a kernel of one replica; its files are mirrored to S3 and follow it, its variables do not.
The shared state store keeps, per conversation, the replica whose kernel ran its last turn. A turn
that starts on another replica is a move: the thread is told once (the next turn there is at home
again), and never on a conversation's first turn. A kernel this replica kept from an earlier stay
holds older variables than the turns run elsewhere since, so it is released first: "reset" is then
true here too. A restarted replica has a new id, so a restart that lost the kernel is a move as well.

One thread's turns run one at a time (the SQS message group), so the read and the write of a
conversation's home never race with another turn of the same conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.conversation import Conversation
from bot.storage.base import StateStore

log = logging.getLogger(__name__)

#: State namespace: conversation id -> the replica whose kernel holds its variables.
HOME = "kernel-home"
VARIABLES_RESET = ("This conversation moved to another server: your files are all here, but variables "
                   "from earlier turns are reset. Run the code that defines them again if you need them.")


def keeps_variables_here(backend: object) -> bool:
    """Whether an agent backend (or code executor) keeps conversations' variables in kernels of this
    process: it says so with a true ``variables_here`` attribute (remote sessions, e.g. AgentCore's,
    follow the conversation and do not)."""
    return bool(getattr(backend, "variables_here", False))


class ConversationMoves:
    """Notices conversations arriving at this ``replica`` from another one (see the module)."""

    def __init__(self, state: StateStore, replica: str,
                 release: Callable[[Conversation], Awaitable[None]]) -> None:
        self.state = state
        self.replica = replica
        self._release = release

    async def arrived(self, conversation: Conversation) -> bool:
        """Record that ``conversation``'s turn runs here; True when it last ran on another replica
        (its variables are not here). Never raises: on a storage failure it says nothing."""
        try:
            home = await self.state.get_value(HOME, conversation.id)
            if home == self.replica:
                return False
            if home is not None:
                await self._release(conversation)  # a kernel from an earlier stay here is out of date
            await self.state.put_value(HOME, conversation.id, self.replica)
        except Exception:
            log.exception("could not check where conversation %s ran last", conversation.id)
            return False
        return home is not None
