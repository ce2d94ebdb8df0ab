"""`make invoke EVENT=events/x.json`: run the handler on an event without Docker, print the answer, save an image."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from devserver.local import ROOT, LocalContext, configure, response_parts, seed  # puts imageorigin on the path
from imageorigin import formats

EXTENSIONS = {f.content_type: f.extensions[0] for f in formats.REGISTRY if f.extensions}  # the registry's


def run(event: dict) -> dict:
    from imageorigin.handlers.api import lambda_handler

    return lambda_handler(event, LocalContext())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("event", type=Path, help="an API Gateway event, e.g. events/api_resize.json")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="folder a returned image is written to")
    parser.add_argument("--images", type=Path, default=ROOT / "samples", help="originals for the embedded S3")
    parser.add_argument("--aws", action="store_true", help="use the real AWS account and buckets in the environment")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())

    if args.aws:
        response = run(event)
    else:
        from moto import mock_aws

        with mock_aws():
            configure(None)
            import boto3

            seed(boto3.client("s3"), args.images)
            response = run(event)

    status, headers, body = response_parts(response)
    print(f"status: {status}")
    for name, value in headers:
        print(f"{name}: {value}")
    content_type = dict(headers).get("Content-Type", "")
    if status == 200 and content_type in EXTENSIONS:
        from PIL import Image

        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"{args.event.stem}.{EXTENSIONS[content_type]}"
        target.write_bytes(body)
        image = Image.open(io.BytesIO(body))
        print(f"\nwrote {target}: {image.format} {image.width}x{image.height} {image.mode}, {len(body)} bytes")
    else:
        print(f"\n{body.decode(errors='replace')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
