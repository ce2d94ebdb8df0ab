"""`make sam-env`: the env-vars file for `sam local invoke --env-vars` against make serve's local S3.

sam local only passes the variables a function declares in infra/template.yaml, so each function declares
AWS_ENDPOINT_URL_S3 as AWS::NoValue (nothing deployed) and this file fills it in. Every other variable gets the
local bucket names (devserver/local.py, as make serve creates them) or the template's default. Credentials are not
in the file: sam local passes the shell's AWS credentials (or placeholders), and the local S3 accepts any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from devserver.local import CACHE, ORIGINALS, ROOT

TEMPLATE = ROOT / "infra" / "template.yaml"
ENDPOINT = "AWS_ENDPOINT_URL_S3"
LOCAL = {"ORIGINALS_BUCKET": ORIGINALS, "CACHE_BUCKET": CACHE}


def load_template(path: Path = TEMPLATE) -> dict:
    """The template as CloudFormation reads it: short forms (!Ref, !Sub, !GetAtt ...) in their long form."""
    from samcli.yamlhelper import yaml_parse  # the SAM CLI's own reader (aws-cli's): 0.3 s to import, cfn-lint's 1.5 s

    return yaml_parse(path.read_text())


def template_variables(template: dict) -> dict[str, dict[str, object]]:
    """Each function's environment as the template writes it: Globals' variables, then its own."""
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: {**shared, **(resource["Properties"].get("Environment", {}).get("Variables", {}))}
            for name, resource in template["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"}


def local_value(name: str, value: object, parameters: dict, endpoint: str) -> str:
    """The value a variable gets locally: the endpoint, a local bucket, a parameter's default, a literal, or ""."""
    if name == ENDPOINT:
        return endpoint
    if name in LOCAL:
        return LOCAL[name]
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return str(parameters[value["Ref"]].get("Default", ""))
    if isinstance(value, str | int | float):
        return str(value)
    return ""  # anything resolved at deploy time (a distribution id, an SSM source): off locally


def env_vars(template: dict, port: str | None = None) -> dict[str, dict[str, str]]:
    """The --env-vars document: one object per function logical id."""
    endpoint = f"http://host.docker.internal:{port or os.environ.get('S3_PORT') or '5005'}"
    parameters = template.get("Parameters", {})
    return {function: {name: local_value(name, value, parameters, endpoint) for name, value in variables.items()}
            for function, variables in template_variables(template).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "sam-env.json")
    parser.add_argument("--port", help="the local S3's port (default: $S3_PORT, else 5005)")
    args = parser.parse_args(argv)
    document = env_vars(load_template(), args.port)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    endpoint = next(iter(document.values()))[ENDPOINT]
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
          f"{', '.join(document)} on S3 at {endpoint}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
