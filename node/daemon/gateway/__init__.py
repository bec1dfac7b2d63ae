"""The HTTPS gateway of a node (docs/GATEWAY.md): JSON-RPC over POST and a WebSocket for
member organisations' systems, Prometheus metrics, health checks, the read-only explorer.

It serves the RPC server's one method registry (node.rpc.RpcServer) on a second transport,
so a method registered in api/ is on the gateway with the role that rbac.py gives its name.
Built by setup.py from the parts it reads (the RPC server, the status report, the chain
counters); run by node.py. Never holds an account key: clients sign their own transactions.

Modules, top first: server (accept loop, caps, deadlines) -> app (ASGI routes) -> auth
(credentials, roles, rate limits) | observe (metrics, health, diagnosis) -> ca (the gateway
CA, issued credentials, revocation; also used by `chain gateway`)."""
