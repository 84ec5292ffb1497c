"""Where the tests have always imported the scripted agent from; it lives in ``bot/agents/scripted.py``."""

from bot.agents.scripted import Raise, ScriptedAgent, Sleep, Step, Wait, WriteFile

__all__ = ["Raise", "ScriptedAgent", "Sleep", "Step", "Wait", "WriteFile"]
