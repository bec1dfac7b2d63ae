"""JSON-RPC 2.0 control plane: a Unix-socket server, its subscriptions, and two clients.

Server side: `RpcServer`, `RpcError`, `Params`, `CallContext`, `SubscriptionHub`.
Client side: `RpcClient` (blocking), `AsyncRpcClient` (trio) and their exceptions.
See docs/RPC_TRANSPORT.md for the wire format, error codes and limits.
"""

from node.rpc.async_client import AsyncRpcClient, ClientSubscription
from node.rpc.client import RpcClient
from node.rpc.client_common import (
    NoNodeError,
    Notification,
    RpcCallError,
    RpcTimeoutError,
    RpcTransportError,
    SubscriptionDroppedError,
)
from node.rpc.errors import InvalidParamsError, RpcError
from node.rpc.hub import Subscription, SubscriptionHub
from node.rpc.params import Params
from node.rpc.server import CallContext, Handler, RpcServer
from node.rpc.unix_socket import SocketPathError

__all__ = [
    "AsyncRpcClient",
    "CallContext",
    "ClientSubscription",
    "Handler",
    "InvalidParamsError",
    "NoNodeError",
    "Notification",
    "Params",
    "RpcCallError",
    "RpcClient",
    "RpcError",
    "RpcServer",
    "RpcTimeoutError",
    "RpcTransportError",
    "SocketPathError",
    "Subscription",
    "SubscriptionDroppedError",
    "SubscriptionHub",
]
