"""Which hosts the chat adapters trust with a download token."""

from __future__ import annotations

import pytest

from adapters.http import host_in

SLACK = ("slack.com", "slack-edge.com")


@pytest.mark.parametrize(("host", "trusted"), [
    ("slack.com", True), ("files.slack.com", True), ("FILES.Slack.COM.", True), ("a.b.slack-edge.com", True),
    ("evilslack.com", False), ("slack.com.evil.example", False), ("", False), (".", False), ("com", False),
])
def test_a_host_is_trusted_only_as_a_listed_domain_or_its_subdomain(host: str, trusted: bool) -> None:
    assert host_in(host, SLACK) is trusted


def test_no_domains_trust_nothing() -> None:
    assert not host_in("slack.com", ())
