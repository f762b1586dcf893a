"""The README's first screen tells a new user what `make run` and `make test` need and
everything `make run` prints: the same URLs, ports, logins and retry interval as its banner."""

import io
import re
from pathlib import Path

from align_workflow.demo.management.commands.run_demo import Command as RunDemo
from align_workflow.demo.management.commands.seed_demo import DEMO_LOGINS

README = Path(__file__).resolve().parents[1] / "README.md"
FIRST_SCREEN_LINES = 60


def first_screen():
    return "\n".join(README.read_text().splitlines()[:FIRST_SCREEN_LINES])


def banner():
    out = io.StringIO()
    RunDemo(stdout=out)._banner(
        "http://127.0.0.1:8000", "http://127.0.0.1:8765", ["simulator", "retry loop", "web"], "http://127.0.0.1:8765"
    )
    return out.getvalue()


def test_the_first_screen_says_what_the_two_commands_need():
    text = first_screen()
    for needed in (
        "make run",
        "make test",
        "Python 3.11",
        "npm",
        "make system-deps",
        "graphviz",
        "chromium",
        "fonts-dejavu-core",
        "apt-get",
        "PORT",
        "SIM_PORT",
    ):
        assert needed in text, needed


def test_the_first_screen_has_every_url_port_and_login_the_banner_prints():
    text = first_screen()
    urls = re.findall(r"http://\S+", banner())
    assert len(urls) >= 6
    for url in urls:
        assert url in text, url
    for _role, user, password in DEMO_LOGINS:
        assert f"`{user}`" in text and f"`{password}`" in text, user


def test_the_retry_loop_interval_is_the_same_in_the_banner_and_the_readme():
    shown = re.search(r"Retry loop\s+every (\d+(?:\.\d+)?) s", banner())
    assert shown, banner()
    assert f"every {shown.group(1)} s" in first_screen()
    assert re.search(rf"--loop\s+# keep going \(every {shown.group(1)} s", README.read_text())
