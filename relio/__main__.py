"""Command line: ``python -m relio demo``."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relio")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="show what relio fixes, on loopback")
    demo.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from relio.demo import main as demo_main

        return demo_main(args.seed)
    return 2


if __name__ == "__main__":
    sys.exit(main())
