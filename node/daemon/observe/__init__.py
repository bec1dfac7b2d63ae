"""What a node says about its own health, for machines and for people: Prometheus metrics
(metrics.py), /healthz and /readyz checks (health.py), and `node_diagnose` / `chain doctor`
(diagnose.py). They read the same sources as node_status (the status report, the driver, the
chain counters), at the moment they are asked, so keeping them costs nothing between asks.
A layer of its own between setup and status: the gateway serves it, the RPC server carries
node_diagnose, and nothing below imports it."""
