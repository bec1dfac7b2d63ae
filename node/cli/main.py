"""`chain`: one command with subcommands, the parser built from one module per command group.

    node_cmds  keygen, init, start              testnet  testnet up|down|status|logs|kill|start
    query      status, tx, block, doctor        apps     item, notarize, record, account
    gateway    gateway init|issue-client|issue-token|revoke|list
    ceremony   genesis member|build|install|hash, peer allow
    data       backup, restore, check
    proofs     receipt, prove, verify, item export, notarize --verify
    gov        gov propose|vote|list|show, validators, account rotate
    common     what they share: errors, output, client options

Every subcommand has --help with an example. This module only builds the parser and
dispatches; nothing imports it but the console script and `python -m node`."""

from __future__ import annotations

import argparse
import sys

from node.cli import apps, ceremony, data, gateway, gov, node_cmds, proofs, query, testnet
from node.cli.common import examples, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chain",
        description="A permissioned PBFT ledger: run nodes, send transactions, query.",
        epilog=examples(
            "chain testnet up --validators 4\nchain item register pallet-1 --meta sku=A1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # The order here is the order `chain --help` lists them in.
    node_cmds.add_node_commands(sub)
    ceremony.add_ceremony_commands(sub)
    data.add_data_commands(sub)
    testnet.add_testnet_commands(sub)
    proofs.add_proof_commands(sub)
    query.add_query_commands(sub)
    items = apps.add_item_commands(sub)
    proofs.add_item_export_command(items)
    notarize = apps.add_notarize_command(sub)
    proofs.add_notarize_verify_options(notarize)
    apps.add_record_commands(sub)
    accounts = apps.add_account_commands(sub)
    gov.add_account_rotate_command(accounts)
    gov.add_gov_commands(sub)
    gateway.add_gateway_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
