"""/healthz fails when the chain cannot commit: a validator cut off from its peers answers
503 and names the failed check (CometBFT's /health would still say OK); `chain doctor`
explains it."""

from __future__ import annotations

import json
import time
from typing import Any

from support.testnet import Testnet, chain_cmd

from node.client.connect import Client, GatewayCredentials


def health(client: Client) -> tuple[int, Any]:
    assert client._rpc is not None
    status, body = client._rpc.get("/healthz")  # type: ignore[union-attr]
    return status, json.loads(body)


def test_healthz_turns_503_when_a_node_is_isolated() -> None:
    with Testnet(validators=4, gateway=True) as net:
        ca_only = GatewayCredentials(ca_file=net.gateway_credentials_dir(0) / "ca.pem")
        with Client(net.gateway_url(0), credentials=ca_only) as client:
            status, report = health(client)
            assert status == 200, report
            for node in (1, 2, 3):
                net.kill(node)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # bounded: the links notice the dead peers
                status, report = health(client)
                if status == 503:
                    break
                time.sleep(0.5)
            assert status == 503, report
            assert "quorum_reachable" in report["failed"]
            check = next(c for c in report["checks"] if c["name"] == "quorum_reachable")
            reachable = int(check["detail"].split(" of 4 validators reachable")[0])
            assert reachable < 3 and "a quorum is 3" in check["detail"]
        doctor = chain_cmd("doctor", "--socket", str(net.socket(0)), check=False)
        assert doctor.returncode == 1, doctor.stdout
        assert "quorum needs" in doctor.stdout or "no prepare" in doctor.stdout, doctor.stdout
