"""`streamrec console` refuses what it cannot serve safely, before it listens."""

from __future__ import annotations

import pytest

from online_model.errors import ConfigurationError
from streams.scorer.console_proxy import scorer_base
from tests.unit.test_cli_errors import streamrec


@pytest.mark.parametrize(
    "url",
    ["host:6066", "ftp://host", "http://", "http://host:port", "http://h/console", "http://h/?a"],
)
def test_the_scorer_url_must_be_a_bare_http_address(url: str) -> None:
    with pytest.raises(ConfigurationError, match="--scorer must be"):
        scorer_base(url)
    assert scorer_base(" https://[::1]:6066/ ") == "https://[::1]:6066"


def test_the_console_refuses_bad_flags_and_an_open_bind_without_tokens() -> None:
    bad = streamrec("console", "--scorer", "localhost:6066")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --scorer must be"), bad.stderr
    open_bind = streamrec("console", env={"STREAMREC_WEB_BIND": "0.0.0.0"})
    assert open_bind.returncode == 2, open_bind.stderr
    assert open_bind.stderr.startswith("error: STREAMREC_WEB_BIND=0.0.0.0 is not a loopback")
    assert "Traceback" not in bad.stderr + open_bind.stderr
