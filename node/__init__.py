"""chain: a permissioned PBFT ledger daemon. Subpackages, top layer first (import-linter
keeps the order; see docs/ARCHITECTURE.md):

    cli       the `chain` command
    testnet   local multi-process testnet, demo workload, live view
    daemon    one running node (store, mempool, chain, driver, reactors, api)  |  client
    proofs    offline verification and provenance bundles
    rpc       generic JSON-RPC 2.0 server and clients  |  ledger  formats and execution
"""
