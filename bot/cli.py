"""``datathread`` command line: chat, run, runs, serve, doctor, feedback, aws-setup, teams-package.

This is the composition root, so it is the one module of ``bot`` that reaches into ``adapters``;
it does so lazily, per command, so ``datathread chat`` never imports a platform SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bot.config import AgentKind, ConfigError, Settings, StoreKind, env_number
from bot.extras import MissingExtra, extra_for_module, require_for_agent, require_for_serve
from bot.feedback import ExportFormat, export_feedback
from bot.logs import setup_logging

AGENT_LABELS = {
    AgentKind.KERNEL: "local Python kernel",
    AgentKind.BEDROCK_AGENTS: "Amazon Bedrock agent",
    AgentKind.CONVERSE: "Amazon Bedrock model + code interpreter",
    AgentKind.SCRIPTED: "scripted answers (DATATHREAD_AGENT_SCRIPT)",
}


LOCAL_HOST = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datathread", description="Data-analysis agents in Slack, Teams and here.")
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="a conversation in this terminal",
                          description="A conversation in this terminal, with a local Python kernel by default.")
    chat.add_argument("--thread", help="resume (or name) this conversation")
    chat.add_argument("--sandbox", action="store_true", help="run code in the bubblewrap sandbox, as `serve` does")
    chat.add_argument("--web", action="store_true",
                      help="also serve this conversation's workspace page on localhost and print its link")
    serve = sub.add_parser(
        "serve", help="serve Slack and/or Teams over HTTP",
        description="Serve the configured surfaces (Slack: SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET; Teams: "
                    "MICROSOFT_APP_ID) over HTTP, with GET /healthz. Listens on this machine only unless "
                    "--all-interfaces (or --host) says otherwise; put it behind your HTTPS proxy or tunnel.",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--host", default=os.environ.get("HOST", LOCAL_HOST),
                       help="address to listen on (env HOST; default %(default)s: this machine only)")
    where.add_argument("--all-interfaces", action="store_true",
                       help=f"listen on every network interface ({ALL_INTERFACES}), e.g. in a container")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")),
                       help="TCP port to listen on (env PORT; default %(default)s)")
    sub.add_parser("doctor", help="check the configuration in plain words", aliases=["check"],
                   description="Check storage, the agent (starting a local kernel when it is the agent) and "
                               "which surfaces are configured, and say what to fix.")
    run = sub.add_parser("run", help="run a workflow file (each step in a workspace of its own)")
    run.add_argument("file", type=Path, help="the workflow, e.g. weekly-sales.yml")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    run.add_argument("--from", dest="resume_from", metavar="STEP",
                     help="resume at STEP, reusing the stored outputs of the steps before it")
    run.add_argument("--sandbox", action="store_true", help="run code in the bubblewrap sandbox, as `serve` does")
    sub.add_parser("runs", help="list recent workflow runs")
    feedback = sub.add_parser("feedback", help="export readers' 👍 / 👎 on answers (to stdout)")
    feedback.add_argument("--since", help="only the last period: 30m, 12h, 7d, 2w")
    feedback.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    sub.add_parser("aws-setup", help="create the DynamoDB table, S3 bucket and SQS queues (DATATHREAD_STORE=aws)")
    package = sub.add_parser(
        "teams-package", help="write the Teams app package (zip) to upload",
        description="Write the Microsoft Teams app package (manifest and icons, zipped) to upload in Teams "
                    "(Apps > Manage your apps > Upload an app).",
    )
    package.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (MICROSOFT_APP_ID)")
    package.add_argument("--out", type=Path, default=Path("datathread-teams.zip"),
                         help="where to write the zip (default %(default)s)")
    return parser


def _runs_local_code(settings: Settings) -> bool:
    if settings.gateway is not None:  # DATATHREAD_EXECUTOR=gateway: code runs on the gateway's kernels
        return False
    return settings.agent is AgentKind.KERNEL or (
        settings.agent is AgentKind.CONVERSE and os.environ.get("DATATHREAD_EXECUTOR", "").lower() == "local"
    )


async def _sandboxed(settings: Settings, required: bool) -> Settings | None:
    """``settings`` with kernels sandboxed as the command requires; ``None`` (after saying why) to stop."""
    from bot.agents.kernel.safety import UNSAFE_WARNING, decide

    if not _runs_local_code(settings):
        return settings
    decision = await decide(settings, required=required)
    if decision.refusal is not None:
        print(f"datathread: {decision.refusal}", file=sys.stderr)
        return None
    if required and settings.unsafe_kernel:
        logging.getLogger("datathread").warning(UNSAFE_WARNING, settings.home)
    return decision.settings


async def _chat(settings: Settings, thread: str | None, sandbox: bool = False, web: bool = False) -> int:
    from adapters.console.chat import run_chat
    from bot.composition import build_engine

    sandboxed = await _sandboxed(settings, required=sandbox)
    if sandboxed is None:
        return 2
    settings = sandboxed
    engine = build_engine(settings)
    from bot.datasets import charts

    charts.warm_up()  # as `serve` does: the first chart of a conversation does not pay matplotlib's import
    server = None
    if web:
        from aiohttp import web as aioweb

        from adapters.local_server import serve
        from adapters.web.wiring import mount

        app = aioweb.Application()
        mount(app, engine)
        server = await serve(app, access_log=False)
        engine.web.serve_at(server.url.replace("127.0.0.1", "localhost"))
    try:
        return await run_chat(engine, thread, AGENT_LABELS[settings.agent],
                              runs_code=settings.agent is AgentKind.KERNEL, web=web)
    finally:
        if server is not None:
            await server.close()


async def _run(settings: Settings, file: Path, params: list[str], resume_from: str | None, sandbox: bool) -> int:
    from adapters.console.surface import ConsoleOutput
    from adapters.console.workflow import load_or_report, run_workflow
    from bot.composition import build_engine
    from bot.workflows.spec import parse_param_args

    errors = ConsoleOutput(sys.stderr)
    workflow = load_or_report(file, errors)
    if workflow is None:
        return 2
    try:
        given = parse_param_args(params)
    except ValueError as exc:
        print(f"datathread: {exc}", file=sys.stderr)
        return 2
    sandboxed = await _sandboxed(settings, required=sandbox)
    if sandboxed is None:
        return 2
    engine = build_engine(sandboxed)
    try:
        return await run_workflow(engine, workflow, given, resume_from=resume_from)
    finally:
        await engine.aclose()


async def _runs(settings: Settings) -> int:
    from adapters.console.workflow import list_runs
    from bot.composition import build_engine

    engine = build_engine(settings)
    try:
        return await list_runs(engine)
    finally:
        await engine.aclose()


def hide_environment() -> bool:
    """Make this process's ``/proc/<pid>/environ`` (and memory) unreadable to other processes of the same
    OS user, so code run by the local kernel cannot read the bot's tokens from its parent. Linux only;
    returns whether it took effect. Kernels are separate programs, reset to dumpable by ``exec``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(4, 0, 0, 0, 0) == 0)  # PR_SET_DUMPABLE = 4, value 0
    except (OSError, AttributeError):
        return False


async def _warm_kernels(agent: object) -> None:
    """Start the local agent's warm kernels before the first message arrives (a failure is only logged)."""
    from bot.agents.kernel.agent import LocalKernelAgent, LocalKernelExecutor

    if isinstance(agent, LocalKernelAgent) and isinstance(agent.executor, LocalKernelExecutor):
        try:
            await agent.executor.warm_up()
        except Exception:
            logging.getLogger("datathread").warning("could not start the warm kernels", exc_info=True)


async def _serve(settings: Settings, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly: new work gets 503, running turns end with
    their "Stopped" note within ``DATATHREAD_SHUTDOWN_GRACE_SECONDS`` (default 20), then the
    server closes. A second signal skips the wait."""
    from aiohttp import web

    from adapters.server import build_app, drain
    from bot.composition import build_engine

    hide_environment()
    sandboxed = await _sandboxed(settings, required=True)
    if sandboxed is None:
        return 2
    settings = sandboxed

    engine = build_engine(settings)
    from bot.datasets import charts

    charts.warm_up()  # matplotlib's import and first figure in the background, off the first chart's path
    await _warm_kernels(engine.agent)
    app = await build_app(engine, settings, os.environ)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log = logging.getLogger("datathread")
    log.info("serving on http://%s:%d (GET /healthz)", host, port)
    engine.web.serve_at(f"http://localhost:{port}")
    if settings.public_url is None:
        log.warning("DATATHREAD_PUBLIC_URL is not set: workspace links point at http://localhost:%d", port)
    grace = env_number(os.environ, "DATATHREAD_SHUTDOWN_GRACE_SECONDS", 20)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            main.cancel()
        else:
            log.info("%s: stopping (new work gets 503; running turns get up to %g s)",
                     signal.Signals(signum).name, grace)
            stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stop.wait()
        began = time.monotonic()
        await drain(app, grace)
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped cleanly in %.1f s", time.monotonic() - began)
    return 0


async def _doctor(settings: Settings) -> int:
    """Check the home folder, the local kernel and the configured agent, and say what to fix."""
    from bot.doctor import DoctorCheck, format_checks

    checks: list[DoctorCheck] = []
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        probe = settings.home / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        checks.append(DoctorCheck("storage", True, f"{settings.home} is writable", ""))
    except OSError as exc:
        hint = "set DATATHREAD_HOME to a writable folder"
        checks.append(DoctorCheck("storage", False, f"{settings.home}: {exc}", hint))
    if settings.store is StoreKind.AWS:
        from bot.aws.doctor import diagnose as diagnose_aws

        checks += await diagnose_aws(os.environ)
    from bot.doctor_setup import agent_sdk_check, kernel_check, surface_checks

    checks += surface_checks(os.environ)
    missing_sdk = agent_sdk_check(settings)
    if missing_sdk is not None:
        checks.append(missing_sdk)
    elif settings.agent is AgentKind.BEDROCK_AGENTS:
        from bot.agents.bedrock_agents.doctor import diagnose as diagnose_agent

        checks += await diagnose_agent(os.environ)
    elif settings.agent is AgentKind.CONVERSE:
        from bot.agents.converse.agent import diagnose as diagnose_converse

        checks += await diagnose_converse(os.environ)
    elif settings.agent is AgentKind.SCRIPTED:
        from bot.agents.script_file import SCRIPT_VARIABLE, scripted_agent_from_env

        try:
            scripted_agent_from_env(os.environ)
            checks.append(DoctorCheck("agent", True, f"scripted answers from {os.environ[SCRIPT_VARIABLE]}"))
        except ConfigError as exc:
            checks.append(DoctorCheck("agent", False, str(exc), "fix the script file or unset DATATHREAD_AGENT"))
    else:
        import importlib.util

        ok = importlib.util.find_spec("ipykernel") is not None
        checks.append(DoctorCheck(
            "agent", ok, "local Python kernel (no cloud account needed)" if ok else "ipykernel is not installed",
            "" if ok else "pip install -e . again",
        ))
    if _runs_local_code(settings) and all(c.ok for c in checks if c.name == "agent"):
        checks.append(await kernel_check(settings))
    if _runs_local_code(settings):
        from bot.agents.kernel.safety import diagnose as diagnose_sandbox

        checks += await diagnose_sandbox(settings)
    if settings.gateway is not None:
        from bot.agents.gateway.doctor import diagnose as diagnose_gateway

        checks += await diagnose_gateway(settings.gateway)
    print(format_checks(checks))
    return 0 if all(c.ok for c in checks) else 1


async def _feedback(settings: Settings, since: str | None, fmt: ExportFormat) -> int:
    from bot.storage.local import SqliteStateStore

    state = SqliteStateStore(settings.state_db, settings.workspaces)
    try:
        count = await export_feedback(state, sys.stdout, since=since, fmt=fmt)
    except ValueError as exc:
        print(f"datathread: {exc}", file=sys.stderr)
        return 2
    finally:
        await state.aclose()
    print(f"{count} verdict(s)", file=sys.stderr)
    return 0


async def _aws_setup() -> int:
    """Create what the AWS mode needs and print each resource, made now or already there."""
    from bot.aws.clients import AwsClients
    from bot.aws.settings import AwsSettings
    from bot.aws.setup import aws_setup

    aws = AwsSettings.from_env(os.environ)
    try:
        steps = await aws_setup(AwsClients.create(), aws)
    except Exception as exc:
        from bot.aws.doctor import problem

        detail, hint = problem(exc)
        print(f"datathread: aws-setup failed: {detail}; {hint}", file=sys.stderr)
        return 1
    for step in steps:
        print(step.line())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Files this process and its kernels create (user code's output too) are private to this OS
    # user; what datathread creates itself is also made 0600/0700 explicitly (bot.private).
    os.umask(0o077)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"datathread: {exc}", file=sys.stderr)
        return 2
    if args.command in ("chat", "run", "runs"):
        # The conversation owns stdout; logs go to a file, and only errors also to stderr.
        setup_logging(logging.INFO, settings.home / "datathread.log", stderr_level=logging.ERROR)
    else:
        setup_logging(logging.INFO)
    try:
        if args.command == "chat":
            require_for_agent(settings)
            return asyncio.run(_chat(settings, args.thread, args.sandbox, args.web))
        if args.command == "serve":
            require_for_serve(settings, os.environ)
            return asyncio.run(_serve(settings, ALL_INTERFACES if args.all_interfaces else args.host, args.port))
        if args.command == "run":
            require_for_agent(settings)
            return asyncio.run(_run(settings, args.file, args.param, args.resume_from, args.sandbox))
        if args.command == "runs":
            return asyncio.run(_runs(settings))
        if args.command == "aws-setup":
            return asyncio.run(_aws_setup())
        if args.command in ("doctor", "check"):
            return asyncio.run(_doctor(settings))
        if args.command == "feedback":
            return asyncio.run(_feedback(settings, args.since, args.format))
        if args.command == "teams-package":
            from adapters.teams.package import write_package

            print(f"wrote {write_package(args.app_id, args.out)}")
            return 0
    except KeyboardInterrupt:
        return 130
    except MissingExtra as exc:
        print(f"datathread: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = extra_for_module(exc.name)
        if extra is None:
            raise
        print(f"datathread: {MissingExtra(extra, f'this needs {extra.purpose}')}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"datathread: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
