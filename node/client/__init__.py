"""What applications and the CLI use to talk to a node: signing and sending transactions
(wallet), over the JSON-RPC clients of node.rpc. Holds the account key on the caller's side.

May import node.proofs, node.rpc and node.ledger. Never imports node.daemon (a client talks
to a daemon over a socket, not through its objects), node.testnet or node.cli."""
