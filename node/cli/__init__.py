"""The `chain` command: one module per command group and the parser built from them.
The top layer: may import every other part of node; nothing imports it."""
