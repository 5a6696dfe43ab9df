"""The edgeface command: one module per command group."""
