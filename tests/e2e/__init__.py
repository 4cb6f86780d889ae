"""End-to-end tests: real `cybermiles devnet` processes driven only through JSON-RPC."""
