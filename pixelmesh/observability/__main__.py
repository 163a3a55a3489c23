"""`python -m pixelmesh.observability [--check] [--chart DIR]`: regenerate the chart's generated files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixelmesh.observability import chart_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelmesh.observability",
        description="Regenerate the Grafana dashboards and alert rules committed in the Helm chart.",
    )
    parser.add_argument("--chart", type=Path, default=chart_files.CHART_DIR, help="the chart directory")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a committed file is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        drifted = chart_files.drifted(args.chart)
        for relative in drifted:
            sys.stderr.write(f"{args.chart / relative} is out of date\n")
        return 1 if drifted else 0
    for relative in chart_files.write(args.chart):
        sys.stdout.write(f"wrote {args.chart / relative}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
