"""On-chain governance (SPEC §7, DESIGN.md §7): proposals and votes that change parameters,
recover funds, enable ENI library versions and halt the chain for upgrades."""
