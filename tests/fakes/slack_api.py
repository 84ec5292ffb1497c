"""Where the tests have always imported the fake Slack Web API from.

The fake itself lives in ``adapters/slack/fake_web_api.py`` so that ``benchmarks/`` can use it
without depending on ``tests/``.
"""

from adapters.slack.fake_web_api import Call, FakeSlack, Posted, action_body, event_body, signed_headers

__all__ = ["Call", "FakeSlack", "Posted", "action_body", "event_body", "signed_headers"]
