"""``costspan dashboards export DIR``: write the Grafana dashboards, optionally translated and in
another currency, plus (with ``--all``) the Prometheus rules, Alertmanager config and Grafana
provisioning files that go with them.

Why an export command rather than "copy them from site-packages": the dashboards are generated
for a language and a currency, and users should not have to find where pip put package data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from costspan.dashboards import build

# Companion files written by --all, from the package data, into subfolders of DIR.
COMPANIONS = (
    ("prometheus", "prometheus", ("costspan-rules.yml", "costspan-rules.test.yml", "costspan-rules-spike.test.yml")),
    ("alertmanager", "alertmanager", ("alertmanager.yml",)),
    ("grafana/provisioning", "provisioning", ("datasource.yaml", "dashboards.yaml")),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dashboards`` (with its ``export`` subcommand) to the ``costspan`` parser."""
    parser = subparsers.add_parser(
        "dashboards",
        help="export the Grafana dashboards, alert rules and Alertmanager config",
        description="Grafana dashboards, Prometheus alert rules and Alertmanager config for costspan's metrics.",
    )
    actions = parser.add_subparsers(dest="dashboards_command", metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the dashboards' JSON into DIR",
        description="Write costspan's Grafana dashboards into DIR, ready for import or file provisioning.",
    )
    export.add_argument("directory", metavar="DIR", type=Path, help="where to write (created if missing)")
    export.add_argument("--lang", choices=build.LANGUAGES, default="en", help="language of titles and descriptions")
    export.add_argument("--currency", default="USD", help="ISO 4217 code cost panels show (default USD)")
    export.add_argument(
        "--per-usd",
        type=float,
        default=None,
        metavar="RATE",
        help="units of --currency per US dollar, e.g. --currency EUR --per-usd 0.92 (required unless USD)",
    )
    export.add_argument(
        "--all",
        action="store_true",
        help="also write prometheus/costspan-rules.yml, alertmanager/alertmanager.yml and provisioning/*.yaml",
    )
    export.add_argument("--json", action="store_true", help="print the written files as JSON")
    export.set_defaults(func=export_handler)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def export_handler(args: argparse.Namespace) -> int:
    """Write the dashboards (and companions with --all); exit 2 on a bad option, 1 on a write error."""
    currency = str(args.currency).upper()
    per_usd = args.per_usd
    if per_usd is None:
        if currency != "USD":
            print(f"costspan: --currency {currency} needs --per-usd (units of {currency} per US dollar)",
                  file=sys.stderr)
            return 2
        per_usd = 1.0
    try:
        options = build.Options(lang=args.lang, currency=currency, per_usd=per_usd)
    except ValueError as exc:
        print(f"costspan: {exc}", file=sys.stderr)
        return 2
    directory: Path = args.directory
    try:
        written = build.write_all(directory, options)
        if args.all:
            for source_dir, target_dir, names in COMPANIONS:
                (directory / target_dir).mkdir(parents=True, exist_ok=True)
                for name in names:
                    target = directory / target_dir / name
                    shutil.copyfile(build.HERE / source_dir / name, target)
                    written.append(target)
    except OSError as exc:
        print(f"costspan: cannot write to {directory}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"lang": options.lang, "currency": options.currency, "per_usd": options.per_usd,
                          "files": [str(p) for p in written]}, indent=2))
    else:
        for path in written:
            print(path)
    return 0
