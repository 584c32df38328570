"""Engines as the agent starts them: in a session of their own, as the engine account, ended with their agent."""

import os
import pwd
import signal
import subprocess
import sys
import textwrap

import psutil
from django.conf import settings

from station.tests.processes import wait_until

AGENT = textwrap.dedent("""
    import signal, time
    import django

    django.setup()
    from station.processes import EngineProcess

    class Idle(EngineProcess):
        def read_stdout(self):
            self.process.stdout.read()

    print(Idle(["sleep", "60"], death_signal=signal.SIGKILL, writes=()).pid, flush=True)
    time.sleep(60)
""")


def test_an_engine_runs_in_its_own_session_as_the_engine_account_and_dies_with_its_agent():
    agent = subprocess.Popen([sys.executable, "-c", AGENT], stdout=subprocess.PIPE, text=True, cwd=settings.BASE_DIR,
                             env={**os.environ, "DJANGO_SETTINGS_MODULE": "station.settings"})
    try:
        engine = psutil.Process(int(agent.stdout.readline()))
        wait_until(lambda: engine.name() == "sleep", timeout=5, message="the engine to start")
        assert os.getsid(engine.pid) == engine.pid  # a terminal's Ctrl-C reaches the agent, which stops it gracefully
        assert engine.uids().real == (pwd.getpwnam(settings.ENGINE_USER).pw_uid if os.geteuid() == 0 else os.geteuid())
    finally:
        agent.send_signal(signal.SIGKILL)  # the agent dies without a word to its engines
        agent.wait()
    _gone, outlived = psutil.wait_procs([engine], timeout=5)
    assert not outlived
