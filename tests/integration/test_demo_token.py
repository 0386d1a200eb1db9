"""`streamrec demo` makes a token for its scorer and prints a curl line and a console URL
that work."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from streams.services.processes import ChildProcess, wait_for
from tests.support.scorer import http_json


def test_the_demo_prints_a_working_curl_line(settings_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in settings_env.items() if k != "STREAMREC_API_TOKENS"}
    demo = ChildProcess.streamrec(
        ["demo", "--duration", "20s", "--rate", "50"], env, tmp_path / "demo.log"
    )
    try:
        line = wait_for(
            lambda: re.search(r"^\s*(curl .*)$", demo.output(), re.MULTILINE),
            90,
            "the demo's curl line",
        ).group(1)
        words = shlex.split(line)  # curl -H 'Authorization: Bearer <token>' '<url>'
        header, url = words[2], words[3]
        token = header.removeprefix("Authorization: Bearer ")
        status, body = http_json(url, token=token)
        assert status == 200 and body["user_id"] == "u1" and len(body["items"]) <= 5
        assert http_json(url)[0] == 401  # the token is what lets it in
        console = re.search(r"^\s*(http://\S+/console)$", demo.output(), re.MULTILINE)
        assert console is not None, demo.output()[-3000:]
        assert http_json(console.group(1) + "/state", token=token)[0] == 200
    except BaseException:
        demo.stop()
        raise
    assert demo.wait(120) == 0, demo.output()[-3000:]
