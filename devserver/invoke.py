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


STAND_IN = ROOT / "samples" / "photos" / "2024" / "street.jpg"  # uploaded at an S3 event's key when it is not there


def is_s3_event(event: dict) -> bool:
    return bool(event.get("Records")) and event["Records"][0].get("eventSource") == "aws:s3"


def run(event: dict) -> dict:
    if is_s3_event(event):  # events/s3_object_*.json: the pre-warm function, as on AWS
        from imageorigin.handlers.s3_events import lambda_handler as s3_handler

        return s3_handler(event, LocalContext())
    from imageorigin.handlers.api import lambda_handler

    return lambda_handler(event, LocalContext())


def stage_s3_event(client: object, event: dict) -> None:
    """Make the embedded bucket look as it would when S3 sent this event: a created object exists (a sample
    stands in for it when the event names a key not in samples/), a removed one has variants to purge."""
    from urllib.parse import unquote_plus

    from devserver.local import ORIGINALS

    for record in event["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])
        client.put_object(Bucket=ORIGINALS, Key=key, Body=STAND_IN.read_bytes(), ContentType="image/jpeg")
        if record["eventName"].startswith("ObjectRemoved"):
            from devserver.local import s3_event

            run(s3_event("ObjectCreated:Put", key))  # its ladder, for the removal to purge
            client.delete_object(Bucket=ORIGINALS, Key=key)


def report_s3(client: object, response: object) -> int:
    from devserver.local import CACHE

    print(f"result: {response}")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=CACHE)
            for o in page.get("Contents", [])]
    print(f"cache bucket now holds {len(keys)} objects" + "".join(f"\n  {k}" for k in keys))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("event", type=Path, help="an API Gateway or S3 event, e.g. events/api_resize.json or "
                        "events/s3_object_created.json")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="folder a returned image is written to")
    parser.add_argument("--images", type=Path, default=ROOT / "samples", help="originals for the embedded S3")
    parser.add_argument("--aws", action="store_true", help="use the real AWS account and buckets in the environment")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())

    if args.aws:
        response = run(event)
        if is_s3_event(event):
            print(f"result: {response}")
            return 0
    else:
        from moto import mock_aws

        with mock_aws():
            configure(None)
            import boto3

            client = boto3.client("s3")
            seed(client, args.images)
            if is_s3_event(event):
                stage_s3_event(client, event)
                return report_s3(client, run(event))
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
