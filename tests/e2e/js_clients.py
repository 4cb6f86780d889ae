"""Run the JavaScript clients of tests/js (ethers.js v6) against a real node.

`make test` installs them from the lockfile (tests/js/package-lock.json, `npm ci`). A test that
needs them fails, never skips, when Node.js or the packages are missing, saying how to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from tests.e2e.harness import REPO_ROOT

JS_DIR = REPO_ROOT / "tests" / "js"
TIMEOUT_S = 120.0


def run_js(script: str, *args: str) -> dict[str, Any]:
    """Run tests/js/`script` with `args`; its last stdout line is a JSON object, returned."""
    node = shutil.which("node")
    assert node is not None, "Node.js (`node`) is not on PATH: install nodejs and npm"
    assert (JS_DIR / "node_modules" / "ethers").is_dir(), (
        f"the JavaScript clients are not installed: run `make test` or `cd {JS_DIR} && npm ci`"
    )
    done = subprocess.run(
        [node, str(JS_DIR / script), *args],
        cwd=JS_DIR, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
