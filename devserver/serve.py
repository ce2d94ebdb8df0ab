"""`make serve`: the real handler behind a local HTTP server, on moto's S3 server on loopback; no AWS, no Docker."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from devserver.local import (
    AWS_CLI_ENV,
    ORIGINALS,
    ROOT,
    LocalContext,
    configure,
    response_parts,
    rest_event,
    s3_event,
    seed,
)

# Dev server only, never in the Lambda: its page at GET / (the playground, the same files the Lambda serves at
# /_playground), a presigned PUT or POST into the local originals bucket, and signing on the page's behalf (the page
# never holds the key). Everything else is the Lambda handler's.
UPLOAD_URL = "/_local/upload-url"  # a presigned PUT
UPLOAD_FORM = "/_local/upload-form"  # a presigned POST (the form fields), as the playground uploads
SIGN = "/_local/sign"  # ?key=&query= (query API) or ?thumbor=<path after the signature>: the signed URL
LOCAL_CONFIG = "/_local/config"  # what the page may do here
S3_PORT = 5005  # the embedded S3's port unless S3_PORT says otherwise (fixed, so printed aws commands keep working)
PLAYGROUND_PAGE = ROOT / "functions" / "resize" / "imageorigin" / "playground" / "index.html"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedS3(threading.Thread):
    """moto's S3 server on a local port, as moto's ThreadedMotoServer runs it, that also tells the watcher when a
    request may have written to the watched bucket (a PUT, POST or DELETE on it, once moto has answered): uploads then
    pre-warm at once; the variants the service writes to the cache bucket wake nothing."""

    def __init__(self, host: str, port: int, watched: str) -> None:
        super().__init__(daemon=True)
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.written = threading.Event()
        app = DomainDispatcherApplication(create_backend_app)

        def signalling(environ: dict, start_response: object) -> object:
            try:
                return app(environ, start_response)
            finally:
                if environ.get("REQUEST_METHOD") in WRITES and names_bucket(environ, watched):
                    self.written.set()

        self.server = make_server(host, port, signalling, threaded=True, request_handler=MotoRequestHandler)

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


WRITES = frozenset({"PUT", "POST", "DELETE"})


def names_bucket(environ: dict, bucket: str) -> bool:
    """Whether an S3 request is addressed to `bucket`: in its path's first segment (path style, as boto3, the AWS CLI
    and presigned URLs address a loopback endpoint) or its host (virtual-hosted style). A key of the other bucket
    that starts with this one's name wakes the watcher for nothing, which is harmless."""
    first = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    return first == bucket or environ.get("HTTP_HOST", "").startswith(f"{bucket}.")


class UploadWatcher(threading.Thread):
    """Emulates the originals bucket's event notifications: woken by each write to it (and every few seconds
    regardless), diff its listing and send the ObjectCreated/ObjectRemoved events S3 would, to the same pre-warm
    handler as on AWS. Listings start at least ten times their own duration apart (a bucket so large that listing it
    is slow takes a tenth of the time at most)."""

    SWEEP = 5.0  # seconds between listings with no write seen (a write that did not wake it is found by then)

    def __init__(self, client: object, handler, lock: threading.Lock, written: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client, self.handler, self.lock, self.written = client, handler, lock, written
        self.seen = self.listing()  # what is there at start was not uploaded now
        self.stopped = threading.Event()

    def listing(self) -> dict[str, str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=ORIGINALS)
        return {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}

    def stop(self) -> None:
        self.stopped.set()
        self.written.set()

    def run(self) -> None:
        listed, spacing = 0.0, 0.0  # when the last listing started; ten times what it took
        while True:
            self.written.wait(max(self.SWEEP, spacing))
            self.stopped.wait(listed + spacing - time.monotonic())  # returns at once when that time has passed
            if self.stopped.is_set():
                return
            self.written.clear()  # before listing: a write during it wakes the next round
            listed = time.monotonic()
            now = self.listing()
            spacing = 10 * (time.monotonic() - listed)
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
                except Exception as exc:  # noqa: BLE001 - one line, as Lambda would log it; the watcher keeps going
                    outcome = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                print(f"S3 {record['eventName']} {record['s3']['object']['key']} -> {outcome}", flush=True)


def make_handler(lambda_handler, lock: threading.Lock, s3: object) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Each request becomes the API Gateway event the function gets on AWS; one at a time, as in Lambda."""

        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            route = urlsplit(self.path).path
            if route == UPLOAD_URL:
                self._upload_url()
                return
            local = {UPLOAD_FORM: self._upload_form, SIGN: self._sign, LOCAL_CONFIG: self._config}
            if route in local and self.command in ("GET", "HEAD"):
                self._json(*local[route]())
                return
            if route == "/" and self.command in ("GET", "HEAD"):
                self._send(200, "text/html; charset=utf-8", PLAYGROUND_PAGE.read_bytes())
                return
            headers = dict(self.headers.items())
            headers.setdefault("X-Forwarded-Proto", "http")  # as API Gateway says https: ?picture links use it
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else None  # POST /animations: its JSON
            event = rest_event(self.command, self.path, headers, body)
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

        def _params(self) -> dict[str, str]:
            return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: object) -> None:
            self._send(status, "application/json", json.dumps(data).encode())

        def _config(self) -> tuple[int, object]:
            from imageorigin import runtime

            return 200, {"upload": True, "signing": bool(runtime.signing_keys())}

        def _upload_form(self) -> tuple[int, object]:
            key = self._params().get("key", "").lstrip("/")
            if not key:
                return 400, {"message": "give ?key=path/of/the/original.jpg"}
            form = s3.generate_presigned_post(ORIGINALS, key, ExpiresIn=3600,
                                              Conditions=[["starts-with", "$Content-Type", ""]])
            return 200, form

        def _sign(self) -> tuple[int, object]:
            from imageorigin import runtime, signing
            from imageorigin.grammars.query import encode_query

            keys = runtime.signing_keys()
            params = self._params()
            if not keys:
                return 404, {"message": "no signing key here (SIGNING_KEYS is empty): URLs need no signature"}
            if "thumbor" in params:
                path = params["thumbor"].lstrip("/")
                return 200, {"url": f"/{signing.thumbor_signature(keys[0], path)}/{path}"}
            key = params.get("key", "").lstrip("/")
            pairs = [tuple(pair.split("=", 1)) for pair in params.get("query", "").split("&") if "=" in pair]
            decoded = parse_qs(params.get("query", ""), keep_blank_values=True)
            signature = signing.sign_query(keys[0], key, decoded)
            query = "&".join(f"{n}={v}" for n, v in pairs)
            return 200, {"url": f"/{quote(key)}?{query + '&' if query else ''}"
                                f"{encode_query([(signing.SIGNATURE, signature)])}"}

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
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("S3_PORT") or S3_PORT),
                        help=f"port of the embedded S3 (default: S3_PORT, else {S3_PORT}; 0: a free one), printed")
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines

    s3_port = args.s3_port or free_port()
    # S3_HOST=0.0.0.0 lets a container (sam local invoke) reach it; loopback only by default
    moto = EmbeddedS3(os.environ.get("S3_HOST", "127.0.0.1"), s3_port, ORIGINALS)
    moto.start()
    configure(f"http://127.0.0.1:{s3_port}")

    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    keys = seed(s3, args.images)
    # the playground POSTs uploads straight to the bucket from its own origin, as a browser would to S3
    s3.put_bucket_cors(Bucket=ORIGINALS, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT", "POST"], "AllowedHeaders": ["*"]}]})
    from imageorigin.handlers import s3_events
    from imageorigin.handlers.api import lambda_handler

    lock = threading.Lock()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(lambda_handler, lock, s3))
    watcher = UploadWatcher(s3, s3_events.lambda_handler, lock, moto.written)
    watcher.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started from a script
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    base = f"http://{args.host}:{server.server_port}"
    s3_url = f"http://127.0.0.1:{s3_port}"
    print(f"imageorigin is serving {len(keys)} originals from {args.images} at {base}")
    print(f"  {base}/   the playground: gallery, upload, parameters, live preview, <picture>")
    print(f"S3 (moto) at {s3_url} (S3_PORT=... make serve moves it); Ctrl-C stops both. Try:")
    examples = [quote(k) for k in keys if k.endswith((".jpg", ".png"))][:2] or [quote(k) for k in keys[:1]]
    for key in examples:
        print(f"  curl -sD- -o /dev/null '{base}/{key}?w=300&fm=webp'")
        print(f"  {base}/{key}?resize=300*200")
        print(f"  {base}/{key}?w=400&h=400&fit=cover&fm=auto")
    first = examples[0] if examples else "missing.jpg"
    print(f"  {base}/{first}?w=0   (a 400 error)")
    print(f"  {base}/{first}?picture   (the responsive <picture>)")
    print(f"  {base}/unsafe/300x200/smart/filters:format(webp)/{first}   (a thumbor URL)")
    from imageorigin import access, runtime
    from imageorigin.config import get_settings

    if access.signatures_required(get_settings(), runtime.signing_keys()):
        print("Signatures are required (SIGNING_KEYS is set): sign URLs with examples/signing/, as in production.")
    else:
        print("No signing key: unsigned and /unsafe/ URLs are served (SIGNING_KEYS=secret make serve to require them).")
    print("Uploads pre-warm the ladder, as S3 events do on AWS (the AWS CLI works with the dummy credentials shown):")
    print(f"  curl -X PUT --upload-file cat.jpg \"$(curl -s '{base}{UPLOAD_URL}?key=uploads/cat.jpg')\"")
    print(f"  {AWS_CLI_ENV} aws --endpoint-url {s3_url} s3 cp cat.jpg s3://{ORIGINALS}/uploads/cat.jpg")
    print(f"  {AWS_CLI_ENV} aws --endpoint-url {s3_url} s3 ls --recursive s3://{ORIGINALS}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)  # stops within 0.1 s of Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        watcher.stop()
        server.server_close()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
