"""What every fuzz target shares: instrumenting the code under test, the allowed-error
guard, and the libFuzzer entry point.

A target module imports the code it fuzzes inside ``with instrumented(__name__):`` so that
atheris adds coverage feedback to streamrec's own modules when the module runs as a fuzzer
(``python -m tests.fuzz.fuzz_<target>``), and imports it plainly under pytest, where the
committed findings are replayed through :func:`check` without atheris' instrumentation.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Committed inputs: ``corpus/<target>/`` seeds, ``regressions/<target>/`` findings.
HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"
#: The packages whose code gets coverage feedback.
INSTRUMENTED = ("streams", "online_model")
#: libFuzzer flags every run gets unless the command line gives its own: an input that
#: takes over 10 s is a hang, over 2 GiB of memory a finding, inputs up to 64 KiB.
DEFAULT_FLAGS = ("-timeout=10", "-rss_limit_mb=2048", "-max_len=65536")


def instrumented(module_name: str) -> contextlib.AbstractContextManager[Any]:
    """Instrument the imports made in this block when ``module_name`` runs as the fuzzer."""
    if module_name != "__main__":
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=list(INSTRUMENTED))


def check(
    one_input: Callable[[bytes], None], allowed: tuple[type[BaseException], ...], data: bytes
) -> None:
    """Run one input; an allowed error is a refusal, anything else propagates (a crash)."""
    with contextlib.suppress(*allowed):
        one_input(data)


def main(
    one_input: Callable[[bytes], None],
    allowed: tuple[type[BaseException], ...],
    argv: list[str] | None = None,
) -> None:
    """Fuzz ``one_input`` with libFuzzer's command line ``argv`` (default: sys.argv)."""
    import atheris

    logging.disable(logging.CRITICAL)  # a warning per input would be most of the run
    args = list(sys.argv if argv is None else argv)
    given = {a.split("=", 1)[0] for a in args[1:] if a.startswith("-")}
    args[1:1] = [f for f in DEFAULT_FLAGS if f.split("=", 1)[0] not in given]

    def test_one_input(data: bytes) -> None:
        check(one_input, allowed, data)

    atheris.Setup(args, test_one_input)
    atheris.Fuzz()
