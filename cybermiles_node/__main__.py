"""`python -m cybermiles_node ...` is the `cybermiles` command (the devnet supervisor starts its
nodes this way, so they run under the same interpreter without needing the console script)."""

from cybermiles_node.operator.cli import main

if __name__ == "__main__":
    main(prog_name="cybermiles")
