"""`python -m flowdeck.tui [--sample] [--definitions DIR] [--execution ID] [--workflow ID]
[--keep-services|--stop-services]`."""

import argparse
import sys

from flowdeck.tui.main import run_dashboard

parser = argparse.ArgumentParser(prog="python -m flowdeck.tui", description="The flowdeck dashboard.")
parser.add_argument("--definitions", "-d", default=None)
parser.add_argument("--sample", action="store_true", help="fixed sample data, no Prefect")
parser.add_argument("--execution", "-e", default=None, help="open on this execution's detail")
parser.add_argument("--workflow", "-w", default=None, help="open on this workflow's structure")
group = parser.add_mutually_exclusive_group()
group.add_argument("--keep-services", dest="keep", action="store_const", const=True, default=None)
group.add_argument("--stop-services", dest="keep", action="store_const", const=False)
args = parser.parse_args()
sys.exit(
    run_dashboard(
        args.definitions,
        keep_services=args.keep,
        sample=args.sample,
        open_execution=args.execution,
        open_workflow=args.workflow,
    )
)
