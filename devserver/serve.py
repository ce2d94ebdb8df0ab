"""`make serve`: the real handler behind a local HTTP server, on moto's S3 server on loopback; no AWS, no Docker."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devserver.local import ROOT, LocalContext, configure, response_parts, rest_event, seed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_handler(lambda_handler, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:  # noqa: ANN001
    class Handler(BaseHTTPRequestHandler):
        """Each request becomes the API Gateway event the function gets on AWS; one at a time, as in Lambda."""

        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            event = rest_event(self.command, self.path, {k: v for k, v in self.headers.items()})
            started = time.perf_counter()
            with lock:
                status, headers, body = response_parts(lambda_handler(event, LocalContext()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            timing = dict(headers).get("Server-Timing", "")
            print(f"{self.command} {self.path} -> {status} {len(body)} B "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms {timing}", flush=True)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # _dispatch prints one line per request

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--images", type=Path, default=Path(os.environ.get("IMAGES") or ROOT / "samples"),
                        help="folder whose images fill the originals bucket (default: samples/)")
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines

    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    configure(f"http://127.0.0.1:{s3_port}")

    import boto3

    keys = seed(boto3.client("s3"), args.images)
    from imageorigin.handlers.api import lambda_handler

    server = ThreadingHTTPServer((args.host, args.port), make_handler(lambda_handler, threading.Lock()))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started from a script
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    base = f"http://{args.host}:{server.server_port}"
    print(f"imageorigin is serving {len(keys)} originals from {args.images} at {base}")
    print(f"S3 (moto) at http://127.0.0.1:{s3_port}; Ctrl-C stops both. Try:")
    examples = [k for k in keys if k.endswith((".jpg", ".png"))][:2] or keys[:1]
    for key in examples:
        print(f"  curl -sD- -o /dev/null '{base}/{key}?w=300&fm=webp'")
        print(f"  {base}/{key}?resize=300*200")
        print(f"  {base}/{key}?w=400&h=400&fit=cover&fm=auto")
    print(f"  {base}/{examples[0] if examples else 'missing.jpg'}?w=0   (a 400 error)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        server.server_close()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
