"""Where the team's shared folder is (SPEC, fixtures, the OpenRPC spec): $CYBERMILES_SHARED,
else `shared` beside the checkout (../shared, as on the team's machines), else /work/shared
(a clone made elsewhere on such a machine, e.g. under /tmp). One definition for every test;
a test that needs a file that is not there fails on the missing path, it never skips."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    *([Path(os.environ["CYBERMILES_SHARED"])] if os.environ.get("CYBERMILES_SHARED") else []),
    Path(__file__).resolve().parents[1].parent / "shared",
    Path("/work/shared"),
]
SHARED = next((path for path in _CANDIDATES if path.is_dir()), _CANDIDATES[0])
FIXTURES = SHARED / "fixtures"
