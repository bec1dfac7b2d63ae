"""The daemon: one running node.

Owns: the LMDB store, the mempool, the ledger service (Chain), the consensus driver, the
reactors over p2p (one per concern, in reactors/), the JSON-RPC methods (api/), node homes
and config.toml, and the wiring that builds all of them (setup.py) and runs them (node.py).

May import: node.proofs, node.rpc, node.ledger, consensus, p2p. Never imports node.cli,
node.testnet or node.client: those drive a daemon from outside.
"""
