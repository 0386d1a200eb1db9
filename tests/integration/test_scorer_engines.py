"""Both scorer engines start through the same checks (streams/cli/scorer.py ``prepare``):
what they cannot do is said in one line, before anything is consumed. The Faust engine's
are covered by the rest of the suite; this runs the kafka engine, chosen by the flag."""

from __future__ import annotations

import socket
from pathlib import Path

from streams.services.processes import ChildProcess
from streams.settings import Settings


def test_a_busy_web_port_stops_the_scorer_with_one_error_line(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", settings.web_port))
        held.listen()
        scorer = ChildProcess.streamrec(
            ["scorer", "--engine", "kafka"],
            {**settings_env, "STREAMREC_SCORER_ENGINE": "faust"},
            tmp_path / "scorer.log",
        )
        code = scorer.popen.wait(60)
        scorer.stop()
    out = scorer.output()
    assert code == 2, out[-3000:]
    assert f"error: port {settings.web_port} is in use" in out
    assert "Traceback" not in out and "scorer ready" not in out
