"""`make worst`: the most expensive anonymous requests we know of, each through the real handler in a fresh process.

Every case runs in its own Python process pinned to one CPU (as a 1769 MB Lambda has about one vCPU), on an
in-memory store holding only the original it asks for, with the default settings (no signing keys: every URL below
is served to anyone). The child measures the handler call alone: CPU (user + sys, every thread), wall time, and the
process's peak resident memory (VmHWM, reset just before the call) over its baseline. The Lambda context's remaining
time counts down from the function's 28 s, so a render that outlives it is answered 503 as it would be there (if
Lambda had not killed it first). The parent enforces a hard
time limit and a memory guard (so a runaway case cannot take the machine down), then prints a markdown table and
writes bench/results/worst.json.

Verdicts: OK when the request was refused with a 4xx, or answered, within CPU_LIMIT_S of CPU and PEAK_LIMIT_MB of
peak memory; FAIL otherwise, and for every 5xx, timeout, memory-guard kill or crash. The exit status is non-zero
only when a case answered 500/502 or crashed: slowness alone never fails the run (it is what this table is for).

    python -m bench.worst            # every case (about 12 minutes on 2 cores); writes bench/results/worst.json
    python -m bench.worst --quick    # a few cheap cases (CI); prints only, unless --out is given
    python -m bench.worst --only earth-own-webp --only photo-w4096-gif
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "functions" / "resize"
SAMPLES = ROOT / "samples"
EVENTS = ROOT / "events"
RESULTS = ROOT / "bench" / "results" / "worst.json"

CPU_LIMIT_S = 8.0  # a request may burn this much CPU...
PEAK_LIMIT_MB = 768.0  # ...and make the process this large at its peak
TIMEOUT_S = 120.0  # per case, the whole child process (a case over it is FAIL "timeout")
MEMORY_GUARD_MB = 6144.0  # the parent kills a child past this resident size (Lambda dies far sooner: 1769 MB)
LAMBDA_TIMEOUT_MS = 28_000  # infra/template.yaml: the context's remaining time counts down from this

# As tests/conftest.py's TEST_ENV: fake credentials, no tracing or metrics; everything else at its default.
ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "ORIGINALS_BUCKET": "worst-originals", "CACHE_BUCKET": "worst-cache",
    "POWERTOOLS_SERVICE_NAME": "imageorigin-worst", "POWERTOOLS_METRICS_NAMESPACE": "ImageOriginWorst",
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true",
}
# Settings a developer's shell might carry that would change what "the default settings" serve.
CLEARED_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "SIGNING_KEYS", "SIGNING_KEYS_SOURCE", "SIGNATURES",
               "ALLOW_UNSAFE", "PRESETS_ONLY", "ALLOWED_WIDTHS", "ALLOWED_HEIGHTS", "SIZE_STEP", "MAX_OUTPUT_SIDE",
               "MAX_SOURCE_BYTES", "MAX_SOURCE_PIXELS", "MAX_FRAMES", "MAX_ANIMATION_PIXELS", "INLINE_MAX_BYTES",
               "TIME_RESERVE_MS", "PRESETS", "KEY_VERSION")


# --- the originals: two samples, and hostile-but-small ones generated on the fly -------------------------------


def _sample(key: str) -> Callable[[], bytes]:
    return lambda: (SAMPLES / key).read_bytes()


def _noisy(size: tuple[int, int], amount: float, seed: int = 7) -> object:
    """A two-way colour gradient with `amount` of uniform noise: photo-like, and not trivially compressible. The
    noise repeats every 263 full-width rows, far beyond what deflate or a JPEG block can see."""
    from PIL import Image

    width, height = size
    rows = 263
    tile = Image.frombytes("RGB", (width, rows), random.Random(seed).randbytes(width * rows * 3))
    noise = Image.new("RGB", size)
    for top in range(0, height, rows):
        noise.paste(tile, (0, top))
    ramp = Image.linear_gradient("L").resize(size)
    base = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_180), Image.new("L", size, 128)))
    return Image.blend(base, noise, amount)


def _saved(image: object, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)  # type: ignore[attr-defined]
    return out.getvalue()


def _jpeg_40mp() -> bytes:
    """7744x5164 = 39.99 MP, just under MAX_SOURCE_PIXELS; about 19 MB, under MAX_SOURCE_BYTES (25 MiB)."""
    return _saved(_noisy((7744, 5164), 0.3), "JPEG", quality=88)


def _png_4096() -> bytes:
    """4096x4096 RGB with a little noise: about 20 MB, every pixel inflated and filtered on decode."""
    return _saved(_noisy((4096, 4096), 0.02), "PNG", compress_level=4)


def _png_1x1() -> bytes:
    from PIL import Image

    return _saved(Image.new("RGB", (1, 1), (200, 40, 40)), "PNG")


def _svg_overdrawn() -> bytes:
    """2,000 overlapping translucent squares (a tenth of the element limit): about 9 s a megapixel to draw."""
    squares = "".join(f'<rect x="{i % 100}" y="{i * 7 % 100}" width="30" height="30" '
                      f'fill="#{i * 123457 % 0xFFFFFF:06x}" opacity="0.5"/>' for i in range(2000))
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{squares}</svg>'.encode()


def _gif_16px(frames: int) -> Callable[[], bytes]:
    """A 16x16 GIF of `frames` different noise frames (nothing for the encoder to share between them)."""
    def make() -> bytes:
        from PIL import Image

        rng = random.Random(frames)
        pictures = [Image.frombytes("RGB", (16, 16), rng.randbytes(16 * 16 * 3)) for _ in range(frames)]
        return _saved(pictures[0], "GIF", save_all=True, append_images=pictures[1:], duration=40, loop=0)
    return make


ORIGINALS: dict[str, tuple[Callable[[], bytes], str]] = {  # key -> (its bytes, Content-Type)
    "animations/earth.gif": (_sample("animations/earth.gif"), "image/gif"),  # 400x400, 44 frames
    "photos/2024/street.jpg": (_sample("photos/2024/street.jpg"), "image/jpeg"),  # 2725x2225
    "gen/anim-16px-100f.gif": (_gif_16px(100), "image/gif"),  # MAX_FRAMES exactly
    "gen/anim-16px-101f.gif": (_gif_16px(101), "image/gif"),  # one frame over
    "gen/1x1.png": (_png_1x1, "image/png"),
    "gen/40mp.jpg": (_jpeg_40mp, "image/jpeg"),
    "gen/noise-4096.png": (_png_4096, "image/png"),
    "gen/overdrawn.svg": (_svg_overdrawn, "image/svg+xml"),
}


# --- the cases -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    url: str  # path (percent-encoded, as API Gateway passes it) and query, as a client would send them
    key: str  # the original it needs in the store
    quick: bool = False  # in the --quick subset (cheap enough for CI)
    note: str = ""


CASES = (
    # animations: every frame is resized and kept (GIF and WebP outputs); the limits check only the source's frames
    Case("earth-w2048-gif", "/animations/earth.gif?w=2048&enlarge=1", "animations/earth.gif",
         note="44 frames enlarged 5x"),
    Case("earth-w2048-webp", "/animations/earth.gif?w=2048&enlarge=1&fm=webp", "animations/earth.gif"),
    Case("earth-w4096-gif", "/animations/earth.gif?w=4096&enlarge=1", "animations/earth.gif",
         note="44 frames of 16.7 MP"),
    Case("earth-w4096-webp", "/animations/earth.gif?w=4096&enlarge=1&fm=webp", "animations/earth.gif"),
    Case("earth-own-webp", "/animations/earth.gif?fm=webp", "animations/earth.gif", quick=True,
         note="no resize at all: every frame through the pipeline (was a 500)"),
    Case("anim16x100-w2048-gif", "/gen/anim-16px-100f.gif?w=2048&enlarge=1", "gen/anim-16px-100f.gif",
         note="100 frames of 16x16 -> 100 of 4.2 MP"),
    Case("anim16x100-w2048-webp", "/gen/anim-16px-100f.gif?w=2048&enlarge=1&fm=webp", "gen/anim-16px-100f.gif"),
    # stills enlarged to the side cap, in the slow encoders
    Case("photo-w4096-avif", "/photos/2024/street.jpg?w=4096&enlarge=1&fm=avif", "photos/2024/street.jpg"),
    Case("photo-fill4096-avif-q100", "/photos/2024/street.jpg?w=4096&h=4096&fit=fill&enlarge=1&fm=avif&q=100",
         "photos/2024/street.jpg"),
    Case("photo-w4096-gif", "/photos/2024/street.jpg?w=4096&enlarge=1&fm=gif", "photos/2024/street.jpg"),
    # thumbor URLs: /unsafe/ is served by default; no fit-in means cover and enlarge
    Case("thumbor-1x1-maxbytes-avif", "/unsafe/4096x4096/filters:max_bytes(1024):format(avif)/gen/1x1.png",
         "gen/1x1.png", quick=True, note="1x1 -> 16.7 MP AVIF"),
    Case("thumbor-photo-maxbytes-avif",
         "/unsafe/4096x4096/filters:max_bytes(1024):format(avif)/photos/2024/street.jpg", "photos/2024/street.jpg",
         note="can never fit: every quality is tried"),
    Case("thumbor-trim-40mp", "/unsafe/trim/4096x4096/gen/40mp.jpg", "gen/40mp.jpg",
         note="trim analyses the whole 40 MP"),
    Case("thumbor-smart-40mp", "/unsafe/4096x4096/smart/gen/40mp.jpg", "gen/40mp.jpg"),
    Case("thumbor-blur-sharpen",
         "/unsafe/fit-in/4096x4096/filters:blur(150):sharpen(10,50,true)/photos/2024/street.jpg",
         "photos/2024/street.jpg"),
    Case("thumbor-gif-4096", "/unsafe/4096x4096/filters:format(gif)/photos/2024/street.jpg", "photos/2024/street.jpg"),
    # the largest original admitted, at its own size (capped to MAX_OUTPUT_SIDE)
    Case("40mp-own-png", "/gen/40mp.jpg?fm=png", "gen/40mp.jpg"),
    Case("40mp-own-avif", "/gen/40mp.jpg?fm=avif", "gen/40mp.jpg"),
    Case("40mp-fill4096-avif-q100", "/gen/40mp.jpg?w=4096&h=4096&fit=fill&enlarge=1&fm=avif&q=100", "gen/40mp.jpg"),
    Case("png4096-own-avif", "/gen/noise-4096.png?fm=avif", "gen/noise-4096.png"),
    Case("png4096-own-png", "/gen/noise-4096.png?fm=png", "gen/noise-4096.png"),
    # just under the limits: the most a request may cost and still be served (noise: the slowest content to encode)
    Case("earth-w480-gif", "/animations/earth.gif?w=480&enlarge=1", "animations/earth.gif",
         note="44 frames of 0.23 MP, under MAX_WORK_MS"),
    Case("earth-w600-gif", "/animations/earth.gif?w=600&enlarge=1", "animations/earth.gif",
         note="44 frames of 0.36 MP, just over MAX_WORK_MS"),
    Case("earth-w900-webp", "/animations/earth.gif?w=900&enlarge=1&fm=webp", "animations/earth.gif",
         note="44 frames of 0.81 MP, under MAX_WORK_MS"),
    Case("photo-w3700-avif", "/photos/2024/street.jpg?w=3700&enlarge=1&fm=avif", "photos/2024/street.jpg"),
    Case("noise-w3300-avif", "/gen/noise-4096.png?w=3300&fm=avif", "gen/noise-4096.png"),
    Case("noise-w2500-png", "/gen/noise-4096.png?w=2500&fm=png", "gen/noise-4096.png"),
    Case("noise-w4096-gif", "/gen/noise-4096.png?w=4096&fm=gif", "gen/noise-4096.png"),
    Case("noise-w4096-webp", "/gen/noise-4096.png?w=4096&fm=webp&q=100", "gen/noise-4096.png"),
    Case("noise-w4096-jpeg", "/gen/noise-4096.png?w=4096&fm=jpeg&q=100", "gen/noise-4096.png"),
    # controls: refused before any work (what every case above should become, or finish cheaply)
    Case("refused-w4097", "/photos/2024/street.jpg?w=4097&enlarge=1&fm=avif", "photos/2024/street.jpg", quick=True,
         note="past MAX_OUTPUT_SIDE"),
    Case("refused-101-frames", "/gen/anim-16px-101f.gif?w=2048&enlarge=1", "gen/anim-16px-101f.gif", quick=True,
         note="past MAX_FRAMES"),
    Case("svg-overdrawn-w2000", "/gen/overdrawn.svg?w=2000&fm=webp", "gen/overdrawn.svg",
         note="36 s of drawing: stopped at what MAX_WORK_MS leaves"),
    Case("photo-w2048-webp", "/photos/2024/street.jpg?w=2048&fm=webp", "photos/2024/street.jpg", quick=True,
         note="an ordinary large request, for scale"),
)


# --- the child: one request, measured ---------------------------------------------------------------------------


def _memory_store_class() -> type:
    """The in-memory store (the one place it is imported): tests/fakes.py, else where it lived before."""
    try:
        from tests.fakes import MemoryStore  # type: ignore[import-not-found]
    except ImportError:
        from imageorigin.storage import MemoryStore
    return MemoryStore


def _proc_kb(name: str, pid: str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat), for a child killed before it reported."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _api_event(path: str, query: dict[str, list[str]] | None) -> dict:
    """A REST API proxy event for `path` built on events/api_resize.json, as tests/conftest.py's api_event."""
    event = json.loads((EVENTS / "api_resize.json").read_text())
    event.update(
        path=path,
        httpMethod="GET",
        queryStringParameters={k: v[-1] for k, v in query.items()} if query else None,
        multiValueQueryStringParameters=query or None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    return event


def _describe(data: bytes) -> dict[str, object]:
    """Format, size and frame count of an encoded image (its headers; pixels are not decoded)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"format": image.format, "width": image.width, "height": image.height,
                    "frames": getattr(image, "n_frames", 1)}
    except Exception as error:  # noqa: BLE001 - reported, not raised: the row still says what came back
        return {"format": None, "decode_error": f"{type(error).__name__}: {error}"}


def run_child(case: dict[str, str], original_file: str, content_type: str, cpu: int, out_file: str) -> None:
    """In a fresh process: pin to `cpu`, load the handler with the in-memory store, run one request, measure it."""
    os.sched_setaffinity(0, {cpu})
    for name in CLEARED_ENV:
        os.environ.pop(name, None)
    os.environ.update(ENV)
    sys.path[:0] = [str(PACKAGE), str(ROOT)]

    from devserver.local import LocalContext

    from imageorigin import runtime
    from imageorigin.handlers import api

    context = LocalContext()
    deadline = [0.0]  # set when the call starts: as Lambda's, the remaining time counts down from the timeout
    context.get_remaining_time_in_millis = lambda: max(0, int((deadline[0] - time.monotonic()) * 1000))

    store = _memory_store_class()()
    store.add_original(case["key"], Path(original_file).read_bytes(), content_type)
    runtime.store = lambda: store  # monkeypatched for this process only

    parts = urlsplit(case["url"])
    event = _api_event(parts.path, parse_qs(parts.query, keep_blank_values=True) or None)

    gc.collect()
    hwm_reset = True
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS, so the peak below is this request's
    except OSError:
        hwm_reset = False
    baseline_kb = _proc_kb("VmRSS") or 0
    def cpu_s() -> float:  # this process's, and its children's (an SVG is drawn in a forked child)
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    before = cpu_s()
    start = time.perf_counter()
    deadline[0] = time.monotonic() + LAMBDA_TIMEOUT_MS / 1000
    response = api.lambda_handler(event, context)
    wall = time.perf_counter() - start
    after = cpu_s()
    peak_kb = _proc_kb("VmHWM") or 0

    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
    status = int(response["statusCode"])
    result: dict[str, object] = {
        "status": status,
        "cpu_s": after - before,
        "wall_s": wall,
        "baseline_mb": baseline_kb / 1024,
        "peak_mb": peak_kb / 1024,
        "hwm_reset": hwm_reset,
        "content_type": headers.get("Content-Type", ""),
        "server_timing": headers.get("Server-Timing", ""),
        "body_bytes": len(body),
    }
    if headers.get("Content-Type", "").startswith("application/json"):
        try:
            error = json.loads(body)
            result["error_code"], result["error_message"] = error.get("code"), error.get("message")
        except ValueError:
            result["error_code"] = None
    elif status == 200 and body:
        result["output"] = {"bytes": len(body), **_describe(body)}
    elif status == 302 and store.variants:  # too large to answer inline: the stored variant is the output
        (blob,) = list(store.variants.values())[-1:]
        result["output"] = {"bytes": len(blob.data), "via": "302", **_describe(blob.data)}
        result["location"] = headers.get("Location", "")
    Path(out_file).write_text(json.dumps(result))


# --- the parent: originals, one child per case, verdicts, the table ------------------------------------------


@dataclass
class Row:
    name: str
    url: str
    note: str
    status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    cpu_s: float | None = None
    wall_s: float | None = None
    baseline_mb: float | None = None
    peak_mb: float | None = None
    output: dict[str, object] | None = None
    server_timing: str = ""
    failure: str | None = None  # timeout, memory guard, crash: the child never reported
    crashed: bool = False
    exception: str | None = None  # what the handler logged for a 5xx
    verdict: str = ""
    reason: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _originals(cases: list[Case], directory: Path) -> dict[str, Path]:
    """Write each original the cases need into `directory` once; the children read it from there."""
    files: dict[str, Path] = {}
    for key in dict.fromkeys(case.key for case in cases):
        make, _ = ORIGINALS[key]
        start = time.perf_counter()
        path = directory / key.replace("/", "__")
        path.write_bytes(make())
        files[key] = path
        if key.startswith("gen/"):
            print(f"  generated {key}: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)
    return files


def _logged_exception(stdout: str) -> str | None:
    """The exception the handler logged (powertools JSON lines on stdout) for a 5xx, in one line."""
    for line in stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("ERROR", "WARNING") and entry.get("exception"):
            last = str(entry["exception"]).strip().splitlines()[-1]
            return last[:300]
    return None


def _run_case(case: Case, original: Path, cpu: int, timeout: float, guard_mb: float, scratch: Path) -> Row:
    row = Row(case.name, case.url, case.note)
    out_file = scratch / f"{case.name}.json"
    command = [sys.executable, "-m", "bench.worst", "--child", json.dumps(asdict(case)), "--original", str(original),
               "--content-type", ORIGINALS[case.key][1], "--cpu", str(cpu), "--result", str(out_file)]
    start = time.monotonic()
    seen_kb, seen_cpu = 0, None
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr, text=True)
        try:
            while child.poll() is None:
                rss = _proc_kb("VmRSS", str(child.pid)) or 0
                seen_kb = max(seen_kb, rss)
                seen_cpu = _proc_cpu_s(child.pid) or seen_cpu
                if time.monotonic() - start > timeout:
                    row.failure = f"timeout after {timeout:.0f} s"
                elif rss / 1024 > guard_mb:
                    row.failure = f"killed past the {guard_mb:.0f} MB memory guard"
                if row.failure:
                    break
                time.sleep(0.05)
        finally:  # a timeout, a guard, or this run itself interrupted: the child never outlives its case
            if child.poll() is None:
                child.kill()
            child.wait()
        stdout.seek(0)
        stderr.seek(0)
        logged, errors = stdout.read(), stderr.read()
    elapsed = time.monotonic() - start
    if row.failure:  # the whole child as the parent saw it (imports included), sampled every 50 ms
        row.wall_s, row.peak_mb, row.cpu_s = elapsed, seen_kb / 1024, seen_cpu
        return row
    if child.returncode != 0 or not out_file.exists():
        row.crashed = True
        row.failure = f"crashed (exit {child.returncode})"
        row.exception = (errors.strip().splitlines() or ["no output"])[-1][:300]
        row.wall_s, row.peak_mb, row.cpu_s = elapsed, seen_kb / 1024, seen_cpu
        return row
    result = json.loads(out_file.read_text())
    for name in ("status", "error_code", "error_message", "cpu_s", "wall_s", "baseline_mb", "peak_mb", "output",
                 "server_timing"):
        setattr(row, name, result.get(name))
    row.extra = {k: v for k, v in result.items() if k in ("hwm_reset", "location", "content_type", "body_bytes")}
    if row.status is not None and row.status >= 500:
        row.exception = _logged_exception(logged)
    return row


def judge(row: Row, cpu_limit: float = CPU_LIMIT_S, peak_limit: float = PEAK_LIMIT_MB) -> Row:
    """OK: refused with a 4xx, or answered, within both limits. FAIL: anything else."""
    reasons: list[str] = []
    if row.failure:
        reasons.append(row.failure)
    elif row.status is not None and row.status >= 500:
        reasons.append(f"{row.status} {row.error_code or ''}".strip())
    if row.cpu_s is not None and row.cpu_s > cpu_limit:
        reasons.append(f"cpu {row.cpu_s:.2f} s > {cpu_limit:g}")
    if row.peak_mb is not None and row.peak_mb > peak_limit:
        reasons.append(f"peak {row.peak_mb:.0f} MB > {peak_limit:g}")
    if row.wall_s is not None and row.wall_s * 1000 > LAMBDA_TIMEOUT_MS and not row.failure:
        reasons.append(f"wall {row.wall_s:.0f} s: past Lambda's {LAMBDA_TIMEOUT_MS // 1000} s")
    row.verdict = "FAIL" if reasons else "OK"
    row.reason = "; ".join(reasons) if reasons else ("refused" if row.status and 400 <= row.status < 500 else "")
    return row


def fatal(row: Row) -> bool:
    """What makes the run exit non-zero: a 500/502 answer, or a child that crashed."""
    return row.crashed or row.status in (500, 502)


def _output(row: Row) -> str:
    out = row.output
    if not out:
        return ""
    if not out.get("format"):
        return f"{out.get('bytes', 0) / 1e3:.0f} kB ({out.get('decode_error', 'undecodable')})"
    frames = f" x{out['frames']}" if (out.get("frames") or 1) > 1 else ""
    size = out["bytes"] / 1e6
    shown = f"{size:.1f} MB" if size >= 1 else f"{out['bytes'] / 1e3:.0f} kB"
    via = " (302)" if out.get("via") else ""
    return f"{out['format']} {out['width']}x{out['height']}{frames}, {shown}{via}"


def _number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = ["| case | request | status | code | CPU s | wall s | peak MB | base MB | output | verdict |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for row in rows:
        verdict = f"**{row.verdict}**" + (f" {row.reason}" if row.reason else "")
        code = row.error_code or ""
        at_least = "≥" if row.failure and row.cpu_s is not None else ""  # a killed child: sampled, whole process
        if row.exception:
            code = f"{code} ({row.exception})" if code else row.exception
        lines.append(
            f"| {row.name} | `{row.url}` | {row.status if row.status is not None else '-'} | {code} "
            f"| {at_least}{_number(row.cpu_s, 2)} | {_number(row.wall_s, 2)} | {at_least}{_number(row.peak_mb, 0)} "
            f"| {_number(row.baseline_mb, 0)} | {_output(row)} | {verdict} |"
        )
    return "\n".join(lines)


def _defaults() -> dict[str, object]:
    """The settings that bound these cases, as the code under test defines them (recorded with the results)."""
    sys.path.insert(0, str(PACKAGE))
    keep = ("max_output_side", "max_source_bytes", "max_source_pixels", "max_frames", "max_animation_pixels",
            "inline_max_bytes", "time_reserve_ms", "signatures", "allow_unsafe")
    try:
        from imageorigin.config import Settings

        defaults = Settings()
        return {name: getattr(defaults, name) for name in keep if hasattr(defaults, name)}
    except Exception as error:  # noqa: BLE001 - the results are still worth writing
        return {"unavailable": f"{type(error).__name__}: {error}"}


def _revision() -> str:
    """The commit the measured code is at, "-dirty" when tracked files differ from it ("unknown" outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def run(cases: list[Case], *, cpu: int, timeout: float = TIMEOUT_S, guard_mb: float = MEMORY_GUARD_MB,
        progress: bool = True) -> list[Row]:
    """Every case in its own process, one after another (never two at once: they would share memory bandwidth)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="worst-") as scratch:
        files = _originals(cases, Path(scratch))
        for case in cases:
            row = judge(_run_case(case, files[case.key], cpu, timeout, guard_mb, Path(scratch)))
            rows.append(row)
            if progress:
                print(f"  {row.name}: {row.status if row.status is not None else '-'} "
                      f"cpu {_number(row.cpu_s, 2)} s, peak {_number(row.peak_mb, 0)} MB -> {row.verdict} "
                      f"{row.reason}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the few cheap cases (CI)")
    parser.add_argument("--only", action="append", metavar="CASE", help="run only these cases (repeatable)")
    parser.add_argument("--out", type=Path, help=f"where to write the JSON (default {RESULTS.relative_to(ROOT)}; "
                                                 "--quick and --only write nothing unless given)")
    parser.add_argument("--cpu", type=int, help="the CPU every case is pinned to (default: the last one allowed)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per case before it is killed")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    # the child's side (internal)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--original", help=argparse.SUPPRESS)
    parser.add_argument("--content-type", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so a running child is killed with us

    if args.child:
        run_child(json.loads(args.child), args.original, args.content_type, args.cpu, args.result)
        return 0
    if args.list:
        for case in CASES:
            print(f"{case.name:32} {'quick ' if case.quick else '      '}{case.url}")
        return 0

    cases = [case for case in CASES if case.quick] if args.quick else list(CASES)
    if args.only:
        unknown = set(args.only) - {case.name for case in CASES}
        if unknown:
            parser.error(f"unknown cases: {', '.join(sorted(unknown))} (see --list)")
        cases = [case for case in CASES if case.name in args.only]
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    print(f"{len(cases)} cases, each in a fresh process pinned to CPU {cpu}, {args.timeout:.0f} s limit",
          file=sys.stderr)
    rows = run(cases, cpu=cpu, timeout=args.timeout)

    print(table(rows))
    failed = sum(row.verdict == "FAIL" for row in rows)
    print(f"\n{len(rows) - failed} OK, {failed} FAIL (limits: {CPU_LIMIT_S:g} s CPU, {PEAK_LIMIT_MB:g} MB peak)")
    out = args.out if args.out else (None if args.quick or args.only else RESULTS)
    if out is not None:
        from PIL import __version__ as pillow

        out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": args.quick,
            "revision": _revision(),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "pinned_to": cpu, "python": platform.python_version(), "pillow": pillow},
            "limits": {"cpu_s": CPU_LIMIT_S, "peak_mb": PEAK_LIMIT_MB, "timeout_s": args.timeout,
                       "memory_guard_mb": MEMORY_GUARD_MB, "lambda_timeout_ms": LAMBDA_TIMEOUT_MS},
            "settings": _defaults(),
            "cases": [asdict(row) for row in rows],
        }
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    broken = [row.name for row in rows if fatal(row)]
    if broken:
        print(f"500/502 or crashed: {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
