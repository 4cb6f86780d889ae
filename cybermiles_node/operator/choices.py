"""What the command line offers before anything heavy is imported.

`cybermiles --help` must answer without loading py-evm, trio or the node (operator/cli.py
imports lazily), yet click needs some choices and bounds when the commands are declared. Those
whose owners import the node stack live here, and the owners take them from here: one
definition each.
"""

from __future__ import annotations

from typing import Final

MAX_VALIDATORS: Final = 20  # `cybermiles devnet --validators` (operator/devnet.py)
PRESETS: Final = ("travis",)  # `cybermiles devnet --preset` (operator/travis_preset.py: TRAVIS)
