"""`make run`: the simulator, the retry loop, the notifications loop and the web server, as child processes.

    python manage.py run_demo --port 28000 --simulator-port 28765

Every child is pointed at the same two addresses: the web server listens on `--port`,
the simulator on `--simulator-port` and reads assets from / sends events to the web
server, and the web server and the retry loop call Align at the simulator
(`ALIGN_SERVICE_URL` and `APP_BASE_URL` follow the ports unless they are set in the
environment).

Before anything starts, both ports must be free: a port in use stops the command with
one line naming it, and nothing is sent anywhere. The simulator starts first; once
it says it is listening (so the process answering on the port is the one started here),
every case past `eligible` is adopted into it (demo/demo_align.py), so Align knows the
demo's cases before anything calls it.

Each child is started only if its command exists, so this works at every stage of the
project. Ctrl-C, SIGTERM and SIGHUP stop them all (SIGINT first, SIGKILL after
STOP_GRACE_SECONDS). The exit status is 1 when a child died on its own or a port was
taken, 0 after a requested stop.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError

from align_workflow.demo.demo_align import adopt_cases, wait_for_simulator

from .seed_demo import DEMO_LOGINS

STOP_GRACE_SECONDS = 5
START_TIMEOUT_SECONDS = 30
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """SIGTERM or SIGHUP arrived: stop every child, as Ctrl-C does."""


def retry_loop_interval():
    """Seconds between two looks of `align_retry_due --loop` (its own default)."""
    return min(settings.ALIGN_SWEEP_SECONDS, 5)


def port_taken(host, port):
    """True when something already listens on (host, port). Binds, never connects: a
    process on the port receives nothing."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"Cannot listen on {host}:{port}: {exc}.") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the servers do (allow_reuse_address): a connection in TIME_WAIT does not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


def child_environment(environ, app_url, simulator_url):
    """The children's environment: the app and (when one is started) the simulator at
    these URLs, unless APP_BASE_URL / ALIGN_SERVICE_URL are set explicitly."""
    env = dict(environ, PYTHONUNBUFFERED="1")
    env.setdefault("APP_BASE_URL", app_url)
    if simulator_url:
        env.setdefault("ALIGN_SERVICE_URL", simulator_url)
    return env


def local_url(host, port):
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{shown}:{port}"


class Command(BaseCommand):
    help = (
        "Run the demo: Align simulator, retry loop and web server on the given ports "
        "(Ctrl-C, SIGTERM or SIGHUP stops everything)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address the web server listens on")
        parser.add_argument("--port", type=int, default=8000, help="the web server's port (default 8000)")
        parser.add_argument(
            "--simulator-port", type=int, default=8765, help="the Align simulator's port (default 8765)"
        )

    def handle(self, *args, host, port, simulator_port, **options):
        commands = get_commands()
        with_simulator = "run_align_simulator" in commands
        app_url = local_url(host, port)
        simulator_url = f"http://127.0.0.1:{simulator_port}"
        self._check_ports(host, port, simulator_port if with_simulator else None)

        env = child_environment(os.environ, app_url, simulator_url if with_simulator else None)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = []
        if with_simulator:
            children.append(
                (
                    "simulator",
                    manage
                    + [
                        "run_align_simulator",
                        "--port",
                        str(simulator_port),
                        "--app-url",
                        app_url,
                        "--exit-with-parent",
                    ],
                )
            )
        if "align_retry_due" in commands:
            children.append(
                ("retry loop", manage + ["align_retry_due", "--loop", "--interval", f"{retry_loop_interval():g}"])
            )
        if "send_notifications" in commands:
            # The one retry of an email that failed, and the emails about events waiting too long.
            children.append(("notifications loop", manage + ["send_notifications", "--loop"]))
        children.append(("web", manage + ["runserver", f"{host}:{port}", "--noreload"]))

        procs = []
        died = []
        previous = {sig: signal.signal(sig, self._stop_requested) for sig in STOP_SIGNALS}
        # Started in the background by a shell, this process may have inherited SIGINT
        # ignored, and so would the children: they would not stop on the SIGINT they are
        # sent. A handled signal is reset to its default in a child.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for name, argv in children:
                if name == "simulator":
                    proc = self._start_simulator(argv, env, procs)
                    # Before anything can call Align: the cases past eligible must be known to it.
                    self._adopt(simulator_url, proc)
                else:
                    procs.append((name, subprocess.Popen(argv, env=env)))
            if self._wait_for_web(host, port, procs):
                self._banner(
                    app_url,
                    simulator_url,
                    [n for n, _ in children],
                    env.get("ALIGN_SERVICE_URL", settings.ALIGN_SERVICE_URL),
                )
            while not died:
                died = [(name, p.returncode) for name, p in procs if p.poll() is not None]
                if not died:
                    time.sleep(0.2)
        except (KeyboardInterrupt, StopRequested):
            pass
        finally:
            # A second signal must not cut the clean-up short.
            for sig in (signal.SIGINT, *STOP_SIGNALS):
                signal.signal(sig, signal.SIG_IGN)
            killed = self._stop_children(procs)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for name, code in died:
            self.stderr.write(f"{name} stopped with exit code {code}; the others were stopped.")
        if died or killed:
            sys.exit(1)

    def _stop_requested(self, signum, frame):
        raise StopRequested(signal.Signals(signum).name)

    def _check_ports(self, host, port, simulator_port):
        if simulator_port is not None and simulator_port == port:
            raise CommandError(
                f"The web server and the Align simulator cannot share port {port}: "
                "choose another --simulator-port (make run SIM_PORT=...)."
            )
        wanted = [(host, port, "the web server's", "--port; make run PORT=...")]
        if simulator_port is not None:
            wanted.append(
                ("127.0.0.1", simulator_port, "the Align simulator's", "--simulator-port; make run SIM_PORT=...")
            )
        for address, number, whose, option in wanted:
            if port_taken(address, number):
                raise CommandError(
                    f"Port {number} ({whose}) is already in use on {address}: stop what "
                    f"listens there or choose another port ({option}). Nothing was started."
                )

    def _start_simulator(self, argv, env, procs):
        """Start the simulator; return once it says it is listening (it bound the port
        itself, so it is the process that answers there). Its output is passed on."""
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        procs.append(("simulator", proc))
        listening = threading.Event()

        def relay():
            for line in proc.stdout:
                if "listening on" in line:
                    listening.set()
                sys.stdout.write(line)
                sys.stdout.flush()

        threading.Thread(target=relay, name="simulator-output", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not listening.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CommandError("The Align simulator did not start (its output is above); no case was adopted.")
        return proc

    def _adopt(self, simulator_url, proc):
        """Tell the fresh simulator about the cases past eligible (see demo/demo_align.py)."""
        if not wait_for_simulator(simulator_url, alive=lambda: proc.poll() is None):
            self.stderr.write(f"The Align simulator did not answer at {simulator_url}; no case was adopted.")
            return
        report = adopt_cases(simulator_url)
        self.stdout.write(report.summary())
        for number, why in report.failed:
            self.stderr.write(f"  {number} could not be adopted: {why}")

    def _wait_for_web(self, host, port, procs):
        """True once the web server accepts connections; False if a child stopped first."""
        address = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if any(p.poll() is not None for _, p in procs):
                return False
            try:
                with socket.create_connection((address, port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def _stop_children(self, procs):
        """SIGINT to every child still running, SIGKILL to those still running after the
        grace period; returns the names of the killed ones."""
        for _, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        killed = []
        for name, p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                killed.append(name)
                self.stderr.write(f"{name} did not stop within {STOP_GRACE_SECONDS}s and was killed.")
        return killed

    def _banner(self, app_url, simulator_url, running, service_url):
        lines = [
            "",
            "align-workflow is running (Ctrl-C stops everything):",
            f"  Sign in           {app_url}/",
            f"  Staff portal      {app_url}/staff/",
            f"  Provider portal   {app_url}/provider/",
            f"  Support diagram   {app_url}/support/workflow/",
            f"  Admin             {app_url}/admin/",
        ]
        if "simulator" in running:
            lines.append(f"  Align simulator   {simulator_url}/_sim/state")
        if service_url.rstrip("/") != simulator_url:
            lines.append(f"  Calls to Align    {service_url} (ALIGN_SERVICE_URL)")
        if "retry loop" in running:
            lines.append(f"  Retry loop        every {retry_loop_interval():g} s (align_retry_due --loop)")
        if "notifications loop" in running:
            lines.append("  Emails            printed here (console backend); send_notifications --loop retries")
        lines.append("Demo logins:")
        lines += [f"  {role:18} {user} / {password}" for role, user, password in DEMO_LOGINS]
        self.stdout.write("\n".join(lines) + "\n")
