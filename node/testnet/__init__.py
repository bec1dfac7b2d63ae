"""The local testnet: N validators and full nodes as OS processes in one directory, the
demo workload and the live view. One implementation for the CLI (`chain testnet`), the
tests and the benchmarks.

May import node.daemon (config and homes), node.client, node.proofs, node.rpc and
node.ledger. Never imports node.cli."""
