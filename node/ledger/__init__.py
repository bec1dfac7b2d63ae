"""The ledger's formats and its deterministic execution: canonical encoding, keys and
signatures, transactions and their schemas, blocks, genesis, RFC 6962 Merkle trees, the
state tree, and the application rules (apps.py).

Pure functions and data (plus reading and writing a key file). Imports nothing of node but
itself; never consensus, p2p, trio or lmdb."""
