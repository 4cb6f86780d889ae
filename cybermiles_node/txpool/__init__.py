"""The transaction pool: admission order, replacement, eviction, reaping for blocks."""
