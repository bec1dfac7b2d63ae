"""Offline verification: receipts, state proofs and provenance bundles checked with nothing
but the genesis file and the document (docs/PROTOCOL.md sections 14-19), and the report page.

Pure: reads no store, opens no socket. May import node.ledger (formats) and consensus
(certificate checks). Never imports node.daemon, node.rpc, node.client, node.testnet or
node.cli."""
