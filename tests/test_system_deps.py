"""`make system-deps` (scripts/system-deps): installs the missing Debian packages when it
can, otherwise one message naming them and the command; nothing to do when all are there.

apt-get, sudo and id are stand-ins on PATH that record what they were asked, so no
package is really installed and the machine's own tools decide nothing."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-deps"
BASH = shutil.which("bash")


def _stub(directory, name, body):
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A PATH with no dot and no chromium, and stand-ins for id, sudo and apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _stub(bin_dir, "id", 'echo "$FAKE_UID"')
    _stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}')
    _stub(bin_dir, "true", "exit 0")

    def run(uid="1000", sudo=None, path=None):
        if sudo == "passwordless":
            _stub(bin_dir, "sudo", f'echo "sudo $*" >> {calls}; [ "$1" = -n ] && shift; exec "$@"')
        elif sudo == "asks for a password":
            _stub(bin_dir, "sudo", f'echo "sudo $*" >> {calls}; echo "a password is required" >&2; exit 1')
        env = {"PATH": path or str(bin_dir), "FAKE_UID": uid, "HOME": str(tmp_path)}
        done = subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
        recorded = calls.read_text().splitlines() if calls.exists() else []
        return done, recorded

    run.bin_dir = bin_dir
    return run


def test_without_root_or_sudo_it_stops_with_one_message_naming_the_packages(machine):
    done, calls = machine(uid="1000", sudo="asks for a password")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "graphviz" in lines[0] and "chromium" in lines[0]
    assert "sudo apt-get install -y graphviz chromium" in lines[0]
    assert not [c for c in calls if c.startswith("apt-get")]  # nothing was attempted


def test_as_root_it_updates_then_installs_only_what_is_missing(machine):
    done, calls = machine(uid="0")
    assert calls[0] == "apt-get update -qq"
    install = calls[1].split()
    assert install[:4] == ["apt-get", "install", "-y", "-qq"]
    assert {"graphviz", "chromium"} <= set(install[4:])
    # The stand-in installed nothing, so the script says what is still missing.
    assert done.returncode == 1
    assert "still missing" in done.stderr


def test_with_passwordless_sudo_it_installs_through_sudo(machine):
    done, calls = machine(uid="1000", sudo="passwordless")
    assert "sudo -n apt-get update -qq" in calls
    assert any(c.startswith("sudo -n apt-get install -y -qq graphviz chromium") for c in calls)


def test_with_everything_present_it_does_nothing_quickly(machine):
    for program in ("dot", "chromium"):
        _stub(machine.bin_dir, program, "exit 0")
    if not (
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists()
        or os.popen("fc-list 'DejaVu Sans' 2>/dev/null").read()
    ):
        pytest.fail("fonts-dejavu-core is missing: run `make system-deps`")
    started = time.monotonic()
    done, calls = machine(uid="0")
    assert (done.returncode, done.stdout, done.stderr, calls) == (0, "", "", [])
    assert time.monotonic() - started < 2
