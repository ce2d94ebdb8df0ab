"""Embeds edge/viewer-request.js, minified, into infra/template.yaml as the CloudFront Function's code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import rjsmin

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "edge" / "viewer-request.js"
TEMPLATE = ROOT / "infra" / "template.yaml"
BLOCK = re.compile(r"(      # BEGIN edge/viewer-request\.js[^\n]*\n      FunctionCode: !Sub \|\n)(.*?)(\n      # END)", re.S)


def minified() -> str:
    """The function's code as deployed: comments and layout removed (CloudFront allows 10 KB)."""
    return rjsmin.jsmin(SOURCE.read_text()).strip()


def embedded(template_text: str) -> str:
    """The code the template carries now."""
    match = BLOCK.search(template_text)
    if match is None:
        raise SystemExit(f"{TEMPLATE}: no BEGIN/END edge/viewer-request.js block")
    return "\n".join(line.removeprefix("        ") for line in match.group(2).splitlines())


def main() -> None:
    text = TEMPLATE.read_text()
    code = minified()
    if "--check" in sys.argv:
        sys.exit(0 if embedded(text) == code else f"{TEMPLATE} is out of date: run make edge")
    indented = "\n".join("        " + line for line in code.splitlines())
    TEMPLATE.write_text(BLOCK.sub(lambda m: m.group(1) + indented + m.group(3), text))
    print(f"embedded {SOURCE.relative_to(ROOT)} in {TEMPLATE.relative_to(ROOT)}: {len(code.encode())} bytes")


if __name__ == "__main__":
    main()
