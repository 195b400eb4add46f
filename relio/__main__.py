"""Command line: ``python -m relio demo`` (also installed as the ``relio`` script).

    python -m relio demo             python-socketio vs relio on a real, flaky loopback connection
    python -m relio demo --engine    the sans-I/O engine simulation (no sockets, a fake clock)
    python -m relio demo --browser   the comparison in a browser tab (socket.io-client beside
                                     relio-client)
    python -m relio demo --sync      a Flask-SocketIO app on Flask-SocketIO vs on relio (threads)
    python -m relio                  this usage
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_SEED = 2026     # same as relio.demo.DEFAULT_SEED (not imported: keeps --help fast)


def _prog() -> str:
    """``relio`` when run as the console script, else ``python -m relio``."""
    return "relio" if os.path.basename(sys.argv[0] or "") == "relio" else "python -m relio"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="relio: reliable, exactly-once, resumable delivery for python-socketio.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    demo = sub.add_parser(
        "demo", help="show what relio fixes, on loopback",
        description="Run one Socket.IO app with python-socketio, then with relio, over a "
                    "loopback link that is cut and stalled, and compare what got through "
                    "(about 20 s). Exit code 1 if relio lost, duplicated or reordered anything.")
    demo.add_argument("--engine", action="store_true",
                      help="run the sans-I/O simulation of relio's protocol engine instead "
                           "(no sockets, a fake clock)")
    demo.add_argument("--browser", action="store_true",
                      help="serve a page on 127.0.0.1 that runs socket.io-client beside "
                           "relio-client through a flaky link (needs js/ built: "
                           "cd js && npm ci && npm run build)")
    demo.add_argument("--port", type=int, default=0,
                      help="port of the --browser page (default: any free port)")
    demo.add_argument("--sync", action="store_true",
                      help="run a Flask-SocketIO app (threads, werkzeug) on Flask-SocketIO and "
                           "on relio instead (needs the flask extra)")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED,
                      help=f"seed of the link's faults (default {DEFAULT_SEED})")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 0
    if args.browser:
        from relio.demo import browser
        return browser.main(args.port)
    from relio import demo

    if args.engine:
        return demo.engine_main(args.seed)
    if args.sync:
        from relio.demo import flask_demo
        return flask_demo.main(args.seed)
    return demo.main(args.seed)


if __name__ == "__main__":
    sys.exit(main())
