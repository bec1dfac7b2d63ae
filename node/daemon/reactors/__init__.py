"""One reactor per concern over the p2p links (CometBFT style): consensus messages,
transaction gossip, block sync. Each owns its bounded channel and gets the parts it uses
passed in. Never imports node.daemon.node, node.daemon.setup or node.daemon.api."""
