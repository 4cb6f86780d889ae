"""What operators touch: the CLI, config files, devnets and their homes, key files, start-up checks,
logs, metrics, the status endpoint data, failure injection for tests."""
