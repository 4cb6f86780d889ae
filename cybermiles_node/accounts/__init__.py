"""Node accounts (issue #11): the geth v3 keystore in HOME/keystore and unlocking.

- `keyfile`: one key file, pure (parse, decrypt, encrypt, geth's file name).
- `keystore`: the directory (scan, import, new accounts; private, crash-safe writes).
- `unlock`: `Unlocker`, which accounts the node may sign for and until when (injected clock).
The `cybermiles account` commands (operator/cli.py) and, later, personal_* RPC use these.
"""
