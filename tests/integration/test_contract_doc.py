"""docs/align-contract.md is the integration service's contract as the simulator serves
it: every route the simulator answers is in it, and nothing points outside the repository."""

import re
import subprocess
from pathlib import Path

from align_simulator import server

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "align-contract.md"


def test_every_simulator_route_is_in_the_contract():
    text = CONTRACT.read_text()
    missing = [route.name for route in server.ROUTES if f"`{route.name}`" not in text]
    assert missing == [], f"routes the simulator serves that docs/align-contract.md does not name: {missing}"


def test_every_route_the_contract_names_is_served():
    text = CONTRACT.read_text()
    named = set(re.findall(r"`((?:GET|POST|PUT|DELETE) /[^`\s]*)`", text))
    served = {route.name for route in server.ROUTES}
    assert named - served == set()


def test_nothing_in_the_repository_points_outside_it():
    pattern = r"\.\./s[h]ared|s[h]ared/d[e]sign"  # written so that this line does not match itself
    found = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", pattern, "--", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert found.returncode == 1, found.stdout  # 1: no line matched
