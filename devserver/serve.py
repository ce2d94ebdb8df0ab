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
from urllib.parse import parse_qs, urlsplit

from devserver.local import ORIGINALS, ROOT, LocalContext, configure, response_parts, rest_event, s3_event, seed

UPLOAD_URL = "/_local/upload-url"  # dev server only: a presigned PUT into the local originals bucket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class UploadWatcher(threading.Thread):
    """Emulates the originals bucket's event notifications: every second, diff its listing and send the
    ObjectCreated/ObjectRemoved events S3 would, to the same pre-warm handler as on AWS."""

    def __init__(self, client: object, handler, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.client, self.handler, self.lock = client, handler, lock
        self.seen = self.listing()  # what is there at start was not uploaded now
        self.stopped = threading.Event()

    def listing(self) -> dict[str, str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=ORIGINALS)
        return {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            now = self.listing()
            events = [s3_event("ObjectCreated:Put", k, e) for k, e in now.items() if self.seen.get(k) != e]
            events += [s3_event("ObjectRemoved:Delete", k) for k in self.seen.keys() - now.keys()]
            self.seen = now
            for event in events:
                record = event["Records"][0]
                started = time.perf_counter()
                try:
                    with self.lock:
                        result = self.handler(event, LocalContext())
                    outcome = f"{result} {(time.perf_counter() - started) * 1000:.0f} ms"
                except Exception as exc:  # noqa: BLE001 - shown, as Lambda would log it; the watcher keeps going
                    outcome = f"failed: {exc}"
                print(f"S3 {record['eventName']} {record['s3']['object']['key']} -> {outcome}", flush=True)


def make_handler(lambda_handler, lock: threading.Lock, s3: object) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Each request becomes the API Gateway event the function gets on AWS; one at a time, as in Lambda."""

        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            if self.path.startswith(UPLOAD_URL):
                self._upload_url()
                return
            event = rest_event(self.command, self.path, dict(self.headers.items()))
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

        def _upload_url(self) -> None:
            key = parse_qs(urlsplit(self.path).query).get("key", [""])[0].lstrip("/")
            if not key:
                body, status = b"give ?key=path/of/the/original.jpg\n", 400
            else:
                url = s3.generate_presigned_url("put_object", Params={"Bucket": ORIGINALS, "Key": key},
                                                ExpiresIn=3600)
                body, status = (url + "\n").encode(), 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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
    from botocore.config import Config

    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    keys = seed(s3, args.images)
    from imageorigin.handlers import s3_events
    from imageorigin.handlers.api import lambda_handler

    lock = threading.Lock()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(lambda_handler, lock, s3))
    watcher = UploadWatcher(s3, s3_events.lambda_handler, lock)
    watcher.start()
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
    print(f"  {base}/{examples[0] if examples else 'missing.jpg'}?w=0   (a 400 error)")
    print(f"  {base}/{examples[0] if examples else 'missing.jpg'}?picture   (the responsive <picture>)")
    print(f"  {base}/unsafe/300x200/smart/filters:format(webp)/{examples[0] if examples else 'missing.jpg'}"
          "   (a thumbor URL)")
    from imageorigin import access, runtime
    from imageorigin.config import get_settings

    if access.signatures_required(get_settings(), runtime.signing_keys()):
        print("Signatures are required (SIGNING_KEYS is set): sign URLs with examples/signing/, as in production.")
    else:
        print("No signing key: unsigned and /unsafe/ URLs are served (SIGNING_KEYS=secret make serve to require them).")
    print("Uploads pre-warm the ladder, as S3 events do on AWS:")
    print(f"  curl -X PUT --upload-file cat.jpg \"$(curl -s '{base}{UPLOAD_URL}?key=uploads/cat.jpg')\"")
    print(f"  aws --endpoint-url http://127.0.0.1:{s3_port} s3 cp cat.jpg s3://{ORIGINALS}/uploads/cat.jpg", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        watcher.stopped.set()
        server.server_close()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
