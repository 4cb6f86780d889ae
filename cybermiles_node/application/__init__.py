"""The chain application: the chain and its store, blocks, block building and validation, fees, the
consensus side of the application, the devnet producer."""
