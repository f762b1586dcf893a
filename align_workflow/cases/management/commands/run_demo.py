"""`make run`: the simulator, the retry loop and the web server, as child processes.

The simulator starts first; once it answers, every case past `eligible` is adopted into
it (cases/demo_align.py), so Align knows the demo's cases before anything calls it.

Each child is started only if its command exists, so this works at every stage of the
project. Ctrl-C stops them all.
"""

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand

from align_workflow.cases.demo_align import adopt_cases, wait_for_simulator

from .seed_demo import DEMO_LOGINS


class Command(BaseCommand):
    help = "Run the demo: Align simulator, retry loop and web server (Ctrl-C stops everything)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--simulator-port", type=int, default=8765)

    def handle(self, *args, host, port, simulator_port, **options):
        app_url = f"http://{host}:{port}"
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = get_commands()
        children = []
        if "run_align_simulator" in commands:
            children.append(("simulator", manage + ["run_align_simulator", "--port", str(simulator_port),
                                                    "--app-url", app_url]))
        if "align_retry_due" in commands:
            children.append(("retry loop", manage + ["align_retry_due", "--loop"]))
        children.append(("web", manage + ["runserver", f"{host}:{port}", "--noreload"]))

        procs = []
        try:
            for name, argv in children:
                proc = subprocess.Popen(argv)
                procs.append((name, proc))
                if name == "simulator":
                    # Before anything can call Align: the cases past eligible must be known to it.
                    self._adopt(f"http://127.0.0.1:{simulator_port}", proc)
            time.sleep(1.5)
            self._banner(app_url, simulator_port, [n for n, _ in children])
            while all(p.poll() is None for _, p in procs):
                time.sleep(0.5)
            for name, p in procs:
                if p.poll() is not None:
                    self.stderr.write(f"{name} stopped with exit code {p.returncode}; stopping the rest.")
        except KeyboardInterrupt:
            pass
        finally:
            for _, p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for _, p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def _adopt(self, simulator_url, proc):
        """Tell the fresh simulator about the cases past eligible (see cases/demo_align.py)."""
        if not wait_for_simulator(simulator_url, alive=lambda: proc.poll() is None):
            self.stderr.write(f"The Align simulator did not answer at {simulator_url}; no case was adopted.")
            return
        report = adopt_cases(simulator_url)
        self.stdout.write(report.summary())
        for number, why in report.failed:
            self.stderr.write(f"  {number} could not be adopted: {why}")

    def _banner(self, app_url, simulator_port, running):
        lines = [
            "",
            "align-workflow is running (Ctrl-C stops everything):",
            f"  Staff portal      {app_url}/staff/",
            f"  Provider portal   {app_url}/provider/",
            f"  Support diagram   {app_url}/support/workflow/",
            f"  Admin             {app_url}/admin/",
        ]
        if "simulator" in running:
            lines.append(f"  Align simulator   http://127.0.0.1:{simulator_port}/_sim/state")
        lines.append("Demo logins:")
        lines += [f"  {role:18} {user} / {password}" for role, user, password in DEMO_LOGINS]
        self.stdout.write("\n".join(lines) + "\n")
