"""SIGTERM and the web apps (``stopped_by_sigterm``): a clean stop once serving, at once
before (a start waiting on Kafka must not hold ``docker stop`` for its whole grace)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from broker.webauth import stopped_by_sigterm

    async def main(serving: bool) -> None:
        stop = asyncio.Event()
        with stopped_by_sigterm(stop, serving=lambda: serving):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), timeout=10)
        print("stopped cleanly")

    asyncio.run(main(sys.argv[1] == "serving"))
    """
)


@pytest.mark.parametrize(
    ("state", "code", "said"),
    [("serving", 0, "stopped cleanly\n"), ("starting", -signal.SIGTERM, "")],
)
def test_sigterm_stops_a_serving_app_cleanly_and_a_starting_one_at_once(
    state: str, code: int, said: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, state], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (code, said), done.stderr
