"""The JSON-RPC methods of a node (docs/RPC.md), receipts and state proofs built from its
store. Each method gets the parts it reads (chain, store, status sources) passed in, never
the whole Node. Never imports node.daemon.node or node.daemon.setup (they import this)."""
