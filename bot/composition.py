"""Composition: build the engine for the configured agent and storage. The one place that chooses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.agents.backend import AgentBackend
from bot.config import AgentKind, Settings, StoreKind
from bot.conversation_moves import ConversationMoves, keeps_variables_here
from bot.datasets.local import LocalDatasetStore
from bot.datasets.memory import prefer_small_pages
from bot.engine import Engine
from bot.private import private_dir
from bot.storage.base import StateStore
from bot.storage.local import SqliteStateStore
from bot.workflows.chat import ChatWorkflows

if TYPE_CHECKING:
    from bot.aws.clients import AwsClients


def build_agent(settings: Settings, state: StateStore, env: Mapping[str, str]) -> AgentBackend:
    """The agent backend ``settings.agent`` names. Backends import their SDKs only when chosen."""
    if settings.agent is AgentKind.BEDROCK_AGENTS:
        from bot.agents.bedrock_agents.agent import BedrockAgent

        return BedrockAgent.from_env(settings, env)
    if settings.agent is AgentKind.CONVERSE:
        from bot.agents.converse.agent import ConverseAgent

        return ConverseAgent.from_env(settings, env, state)
    if settings.agent is AgentKind.SCRIPTED:
        from bot.agents.script_file import scripted_agent_from_env

        return scripted_agent_from_env(env)
    from bot.agents.kernel.agent import LocalKernelAgent

    if settings.gateway is not None:  # DATATHREAD_EXECUTOR=gateway: the kernels run on a Jupyter Enterprise Gateway
        from bot.agents.gateway.executor import GatewayExecutor

        return LocalKernelAgent(GatewayExecutor(settings, settings.gateway, state))
    return LocalKernelAgent.from_settings(settings)


def build_engine(
    settings: Settings, agent: AgentBackend | None = None, env: Mapping[str, str] | None = None,
    aws_clients: AwsClients | None = None,
) -> Engine:
    """An engine on the configured storage: the embedded one (SQLite + local folders under
    ``settings.home``), or with ``DATATHREAD_STORE=aws`` DynamoDB, S3 and SQS (``bot.aws``; clients
    made from ``env`` unless ``aws_clients`` are given, e.g. counting ones in a benchmark)."""
    env = os.environ if env is None else env
    private_dir(settings.home)
    prefer_small_pages()  # sorts of large datasets make ~1 GB of new arrays: see bot.datasets.memory
    if settings.store is StoreKind.AWS:
        from bot.aws.stores import build_aws_stores

        stores = build_aws_stores(settings, env, aws_clients)
        engine = Engine(settings, stores.state, stores.datasets, agent or build_agent(settings, stores.state, env))
        intake = engine.intake = stores.intake(engine)  # turns go through SQS, run by whichever replica receives them
        engine.share_workspaces(stores.workspace_mirror())
        if keeps_variables_here(engine.agent):  # local kernels: a conversation moving loses its variables
            engine.moves = ConversationMoves(stores.state, intake.replica, engine.agent.release)
        return engine
    state = SqliteStateStore(settings.state_db, settings.workspaces)
    datasets = LocalDatasetStore(settings.datasets, settings.retention)
    engine = Engine(settings, state, datasets, agent or build_agent(settings, state, env))
    engine.actions.workflows = ChatWorkflows(engine, settings.home / "workflows")
    return engine
