"""A tiny child process for supervisor tests: listens on --port, says its pid, writes its ready file.

``--fail-if-exists PATH`` makes it exit with status 3 before it is ready while PATH exists
(a crash loop the test can start and end); it ignores nothing and traps nothing, so
signals act on it as on any process.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from runtime.ready import ReadyReport, write_ready_file


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-if-exists", type=Path, default=None)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    if args.fail_if_exists is not None and args.fail_if_exists.exists():
        return 3
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen()
    port = listener.getsockname()[1]
    write_ready_file(
        args.ready_file, ReadyReport(service="child", pid=os.getpid(), addresses={"tcp": f"127.0.0.1:{port}"})
    )
    while True:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(f"{os.getpid()}\n".encode())


if __name__ == "__main__":
    sys.exit(main())
