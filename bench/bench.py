"""`make bench`: our transform against the usual Pillow recipe and libvips, side by side in one process."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions" / "resize"))

from PIL import Image, ImageChops, ImageOps, ImageStat  # noqa: E402

from imageorigin import delivery, formats, ladder  # noqa: E402
from imageorigin import render as transform  # noqa: E402
from imageorigin.config import Settings  # noqa: E402
from imageorigin.formats import Format  # noqa: E402
from imageorigin.grammars.query import parse  # noqa: E402
from imageorigin.model import ResizeSpec  # noqa: E402
from imageorigin.render import Limits, pixels  # noqa: E402
from imageorigin.render import encode as encoding  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "photos"
# From the format registry: Pillow's name, the default quality, the suffix libvips saves by.
PIL_NAMES = {f.name: f.name.upper() for f in formats.OUTPUTS.values()}
QUALITY = {f.name: f.quality for f in formats.OUTPUTS.values() if f.quality is not None}
VIPS_SAVE = {f.name: "." + f.extensions[0] for f in formats.OUTPUTS.values()}


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # corpus file name, or "generated:<w>x<h>"
    width: int
    fmt: str


@dataclass
class Row:
    case: str
    ours_ms: float
    usual_ms: float
    vips_ms: float | None  # libvips writing the same kind of file as ours (progressive JPEG, same WebP method...)
    ours_psnr: float
    usual_psnr: float | None
    vips_psnr: float | None
    ours_bytes: int
    vips_bytes: int | None
    ours_peak_mb: float | None = None
    vips_peak_mb: float | None = None
    vips_default_ms: float | None = None  # libvips with its own save defaults, where they differ (baseline JPEG)

    @property
    def vs_vips(self) -> float | None:
        return self.ours_ms / self.vips_ms if self.vips_ms else None

    @property
    def vs_vips_default(self) -> float | None:
        return self.ours_ms / self.vips_default_ms if self.vips_default_ms else None

    @property
    def vs_usual(self) -> float:
        return self.usual_ms / self.ours_ms


CORPUS_CASES = [
    Case("12MP JPEG -> 400 JPEG", "jpeg_12mp_galaxy_s7edge.jpg", 400, "jpeg"),
    Case("12MP JPEG -> 400 WebP", "jpeg_12mp_galaxy_s7edge.jpg", 400, "webp"),
    Case("12MP JPEG -> 1200 JPEG", "jpeg_12mp_galaxy_s7edge.jpg", 1200, "jpeg"),
    Case("12MP JPEG -> 1200 WebP", "jpeg_12mp_galaxy_s7edge.jpg", 1200, "webp"),
    Case("12MP JPEG -> 400 AVIF", "jpeg_12mp_galaxy_s7edge.jpg", 400, "avif"),
    Case("16MP JPEG (orientation 8) -> 400 JPEG", "jpeg_16mp_leica_t_orient8.jpg", 400, "jpeg"),
    Case("progressive JPEG -> 400 JPEG", "jpeg_progressive_1201x800.jpg", 400, "jpeg"),
    Case("RGBA PNG -> 400 WebP", "png_rgba_2048x1536.png", 400, "webp"),
    Case("WebP -> 400 WebP", "webp_1024x772.webp", 400, "webp"),
    Case("animated GIF (44 frames) -> 200 WebP", "gif_anim_earth_400.gif", 200, "webp"),
    Case("40MP JPEG (largest allowed) -> 400 JPEG", "generated:7300x5479", 400, "jpeg"),
]
GENERATED_CASES = [
    Case("generated 12MP JPEG -> 400 JPEG", "generated:4032x3024", 400, "jpeg"),
    Case("generated 12MP JPEG -> 1200 WebP", "generated:4032x3024", 1200, "webp"),
]
TINY_CASES = [Case("generated 0.3MP JPEG -> 100 JPEG", "generated:640x480", 100, "jpeg")]


GENERATED = Path(os.environ.get("TMPDIR", "/tmp")) / "imageorigin-bench"


def source_bytes(source: str) -> bytes:
    """A corpus file, or a generated photo-like JPEG cached on disk (so a memory probe only reads it)."""
    if not source.startswith("generated:"):
        return (CORPUS / source).read_bytes()
    cached = GENERATED / f"{source.split(':')[1]}.jpg"
    if cached.exists():
        return cached.read_bytes()
    width, height = (int(v) for v in source.split(":")[1].split("x"))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient.rotate(90)))
    image = Image.blend(image, Image.effect_noise((width, height), 40).convert("RGB"), 0.3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    GENERATED.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(out.getvalue())
    return out.getvalue()


def ours(data: bytes, width: int, fmt: str) -> bytes:
    spec = parse("/x", {"w": [str(width)], "fm": [fmt]}).spec
    return transform.render(data, spec, transform.Limits()).data


def usual(data: bytes, width: int, fmt: str) -> bytes:
    """The usual 'correct' recipe: open, exif_transpose, thumbnail, save."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image.thumbnail((width, width * 100))
    if fmt == "jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, PIL_NAMES[fmt], **({"quality": QUALITY[fmt]} if fmt in QUALITY else {}))
    return out.getvalue()


def vips_available() -> bool:
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def vips(data: bytes, width: int, fmt: str) -> bytes:
    """libvips: thumbnail_buffer (shrink-on-load, orientation), saved at the same quality as the same kind of file
    as ours (JPEG progressive or not, WebP method, AVIF speed), metadata stripped."""
    return _vips(data, width, fmt, same_output=True)


def vips_default(data: bytes, width: int, fmt: str) -> bytes:
    """libvips saving with its own defaults at the same quality (for JPEG: baseline, no Huffman optimisation)."""
    return _vips(data, width, fmt, same_output=False)


def _vips(data: bytes, width: int, fmt: str, same_output: bool) -> bytes:
    import pyvips

    animated = data[:3] == b"GIF" or (data[:4] == b"RIFF" and b"ANIM" in data[:64])
    image = pyvips.Image.thumbnail_buffer(data, width, height=width * 100, option_string="n=-1" if animated else "")
    return image.write_to_buffer(VIPS_SAVE[fmt], keep=0, **vips_save_options(fmt, same_output))


def vips_save_options(fmt: str, same_output: bool) -> dict[str, object]:
    """libvips' save options for our quality, and with `same_output` for the same kind of file as ours."""
    options: dict[str, object] = {"Q": QUALITY[fmt]} if fmt in QUALITY else {}
    if fmt == "avif":  # libvips' effort 0-9 (slowest) is libaom's speed 9-0
        options["effort"] = 9 - int(formats.BY_NAME["avif"].save_options["speed"])
    if same_output and fmt == "jpeg":
        jpeg = formats.BY_NAME["jpeg"].save_options
        options["interlace"] = bool(jpeg["progressive"])
        options["optimize_coding"] = bool(jpeg["optimize"] or jpeg["progressive"])
    if same_output and fmt == "webp":
        options["effort"] = int(formats.BY_NAME["webp"].save_options["method"])
    return options


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def one_thread() -> None:
    """Every encoder on one thread, as libvips is set to here and as on a one-vCPU Lambda (Pillow's AVIF plugin
    otherwise uses every core)."""
    from PIL import AvifImagePlugin

    AvifImagePlugin.DEFAULT_MAX_THREADS = 1


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def psnr(a: Image.Image, b: Image.Image) -> float:
    a, b = a.convert("RGB"), b.convert("RGB")
    stat = ImageStat.Stat(ImageChops.difference(a, b))
    mse = sum(stat.sum2) / (3 * a.width * a.height)
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


def resized_pixels(render: Callable[[bytes, int, str], bytes], data: bytes, width: int) -> Image.Image:
    """The resized picture before lossy encoding: the same pipeline, saved as PNG."""
    image = Image.open(io.BytesIO(render(data, width, "png")))
    image.load()
    return image


def reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    """Full-resolution decode, upright, then one LANCZOS resize."""
    full = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGBA")
    return full.resize(size, Image.Resampling.LANCZOS)


def flatten(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


# ru_maxrss survives execve on Linux (a child starts with its parent's peak), so the peak is read from
# /proc: writing 5 to clear_refs resets VmHWM to the current RSS, and VmHWM is then the peak since.
PEAK = """
import sys
sys.path[:0] = [{root!r}, {package!r}]
from bench.bench import {fn}, one_thread, source_bytes

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

one_thread()
data = source_bytes({source!r})
{fn}(source_bytes("generated:64x48"), 32, {fmt!r})  # imports and first-use allocations happen before the baseline
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
{fn}(data, {width}, {fmt!r})
print((status("VmHWM") - before) / 1024)
"""


def peak_mb(fn: str, case: Case) -> float | None:
    """Peak memory growth of one render, in a fresh process, above the interpreter with its imports and input.
    Linux only (reads /proc); None elsewhere."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    code = PEAK.format(root=str(ROOT), package=str(ROOT / "functions" / "resize"), fn=fn, source=case.source,
                       fmt=case.fmt, width=case.width)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def run_case(case: Case, runs: int, with_vips: bool, memory: bool) -> Row:
    data = source_bytes(case.source)
    renders: dict[str, Callable[[bytes, int, str], bytes]] = {"ours": ours, "usual": usual}
    if with_vips:
        renders["vips"] = vips
        if case.fmt == "jpeg":  # the only format whose libvips defaults differ from our settings
            renders["vips_default"] = vips_default
    for render in renders.values():  # warm up
        render(data, case.width, case.fmt)
    times: dict[str, list[float]] = {name: [] for name in renders}
    for _ in range(runs):  # interleaved, so machine noise hits all alike
        for name, render in renders.items():
            times[name].append(median_ms(lambda r=render: r(data, case.width, case.fmt), 1))
    pixels = {name: resized_pixels(render, data, case.width) for name, render in renders.items()
              if name != "vips_default"}
    ref = flatten(reference(data, pixels["ours"].size))
    quality = {name: psnr(flatten(img), ref if img.size == ref.size else flatten(reference(data, img.size)))
               for name, img in pixels.items()}
    if data[:3] == b"GIF":  # first frames against a strip of frames: not comparable
        quality = {name: value if name == "ours" else None for name, value in quality.items()}
    return Row(
        case=case.name,
        ours_ms=statistics.median(times["ours"]),
        usual_ms=statistics.median(times["usual"]),
        vips_ms=statistics.median(times["vips"]) if with_vips else None,
        ours_psnr=quality["ours"],
        usual_psnr=quality["usual"],
        vips_psnr=quality.get("vips"),
        ours_bytes=len(ours(data, case.width, case.fmt)),
        vips_bytes=len(vips(data, case.width, case.fmt)) if with_vips else None,
        ours_peak_mb=peak_mb("ours", case) if memory else None,
        vips_peak_mb=peak_mb("vips", case) if memory and with_vips else None,
        vips_default_ms=statistics.median(times["vips_default"]) if "vips_default" in times else None,
    )


def prewarm(source: str, runs: int, with_vips: bool, widths: tuple[int, ...] | None = None) -> dict[str, object]:
    """The default ladder (or one of `widths`) from one decode, against the classic way (each size from the full
    image, q95, optimize), against its largest member, against the floor its encodes set, and against libvips
    making the same ladder."""
    data = source_bytes(source)
    settings = Settings() if widths is None else Settings(ladder_widths=widths)
    requests = ladder.ladder("x.jpg", settings)
    specs = [r.spec for r in requests]

    def classic() -> None:
        full = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        full.load()
        for request in requests:
            fmt = request.spec.format.value
            copy = full.copy()
            copy.thumbnail((request.spec.width, request.spec.width * 100))
            out = io.BytesIO()
            copy.save(out, PIL_NAMES["jpeg" if fmt == "original" else fmt], quality=95, optimize=True)

    widest = max(spec.width or 0 for spec in specs)
    largest = [spec for spec in specs if spec.width == widest]  # the largest member, in every format of the ladder
    limits = delivery.limits(settings)
    ladders: dict[str, Callable[[], object]] = {
        "ours": lambda: transform.render_many(data, specs, limits),
        "largest": lambda: transform.render_many(data, largest, limits)}
    if with_vips:
        ladders["vips"] = lambda: vips_ladder(data, specs)
    times: dict[str, list[float]] = {name: [] for name in ladders}
    for _ in range(runs):  # interleaved
        for name, fn in ladders.items():
            times[name].append(median_ms(fn, 1))
    ms = {name: statistics.median(values) for name, values in times.items()}
    encodes = ladder_encodes_ms(data, specs, limits, max(1, runs // 2))
    smaller = sum(t for spec, t in zip(specs, encodes, strict=True) if spec.width != widest)
    classic_ms = median_ms(classic, max(1, runs // 2))
    return {"variants": len(specs), "ours_ms": ms["ours"], "classic_ms": classic_ms,
            "speedup": classic_ms / ms["ours"], "vips_ms": ms.get("vips"),
            "largest_member": f"{widest} px x {len(largest)} formats", "largest_ms": ms["largest"],
            "ladder_vs_largest": ms["ours"] / ms["largest"], "encodes_ms": sum(encodes),
            "smaller_encodes_ms": smaller, "floor_vs_largest": (ms["largest"] + smaller) / ms["largest"]}


def ladder_encodes_ms(data: bytes, specs: list[ResizeSpec], limits: Limits, runs: int) -> list[float]:
    """The time to encode each ladder variant from its resized pixels, with transform's own encoder settings: the
    part of a ladder that no sharing of decodes or resizes can save. The pixels are the same ladder made as PNG."""
    made = transform.render_many(data, specs, limits)
    pixels = transform.render_many(data, [replace(spec, format=Format.PNG) for spec in specs], limits)
    times = []
    for spec, variant, png in zip(specs, made, pixels, strict=True):
        picture = Image.open(io.BytesIO(png.data))
        picture.load()
        quality = spec.quality_for(variant.format)
        times.append(median_ms(lambda p=picture, f=variant.format, q=quality: encoding.encode(p.copy(), f, q), runs))
    return times


def vips_ladder(data: bytes, specs: list[ResizeSpec]) -> list[bytes]:
    """libvips making the same ladder the same way: one shrink-on-load decode to the largest width, each smaller
    width resized from the one before (lanczos3), every variant saved as ours is."""
    import pyvips

    widths = sorted({spec.width or 0 for spec in specs}, reverse=True)
    picture = pyvips.Image.thumbnail_buffer(data, widths[0], height=widths[0] * 100).copy_memory()
    out = []
    for width in widths:
        if picture.width != width:
            picture = picture.resize(width / picture.width, kernel="lanczos3").copy_memory()
        for spec in (s for s in specs if s.width == width):
            fmt = "jpeg" if spec.format is Format.ORIGINAL else spec.format.value
            out.append(picture.write_to_buffer(VIPS_SAVE[fmt], keep=0, **vips_save_options(fmt, same_output=True)))
    return out


def stages(source: str, width: int, runs: int) -> dict[str, object]:
    """A JPEG photo to `width` px JPEG in its three steps, each timed alone and interleaved: ours as transform
    does them (Pillow's draft decode with transform's headroom, transform.resize, transform.encode) against libvips
    doing the same work (the same shrink-on-load, lanczos3, the same kind of file). Where the time goes."""
    import pyvips

    data = source_bytes(source)
    with Image.open(io.BytesIO(data)) as probe:
        full = probe.size
    scale = width / full[0] * pixels.DRAFT_HEADROOM
    height = round(full[1] * width / full[0])

    def pil_decode() -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (math.ceil(full[0] * scale), math.ceil(full[1] * scale)))
        image.load()
        return image

    decoded = pil_decode()
    shrink = full[0] // decoded.width

    def pil_resize() -> Image.Image:
        return pixels.resize(decoded, (width, height), (0, 0, *decoded.size))

    resized = pil_resize()

    def vips_decode() -> pyvips.Image:
        return pyvips.Image.new_from_buffer(data, "", shrink=shrink).copy_memory()

    vips_decoded = vips_decode()

    def vips_resize() -> pyvips.Image:
        return vips_decoded.resize(width / vips_decoded.width, kernel="lanczos3").copy_memory()

    vips_resized = vips_resize()
    steps: dict[str, dict[str, Callable[[], object]]] = {
        "decode": {"ours": pil_decode, "vips": vips_decode},
        "resize": {"ours": pil_resize, "vips": vips_resize},
        "encode": {"ours": lambda: encoding.encode(resized.copy(), Format.JPEG, QUALITY["jpeg"]),
                   "vips": lambda: vips_resized.write_to_buffer(".jpg", keep=0, **vips_save_options("jpeg", True))},
    }
    times = {step: {side: [] for side in sides} for step, sides in steps.items()}
    for _ in range(runs):
        for step, sides in steps.items():
            for side, fn in sides.items():
                times[step][side].append(median_ms(fn, 1))
    result: dict[str, object] = {"decoded": f"{decoded.width}x{decoded.height} (1/{shrink})",
                                 "resized": f"{width}x{height}"}
    for step, sides in times.items():
        ours_ms, vips_ms = statistics.median(sides["ours"]), statistics.median(sides["vips"])
        result[step] = {"ours_ms": ours_ms, "vips_ms": vips_ms, "ratio": ours_ms / vips_ms}
    return result


# Encoder settings compared on one resized picture: (format, label, Pillow save options).
ENCODER_SETTINGS = [
    ("jpeg", "baseline", {"quality": 80, "optimize": False, "progressive": False}),
    ("jpeg", "baseline, optimize", {"quality": 80, "optimize": True, "progressive": False}),
    ("jpeg", "progressive", {"quality": 80, "optimize": False, "progressive": True}),
    *[("webp", f"method {m}", {"quality": 80, "method": m}) for m in (0, 2, 4, 5, 6)],
    *[("avif", f"speed {s}", {"quality": 60, "speed": s}) for s in (4, 6, 7, 8, 9)],
    # JPEG XL against AVIF and WebP at equal quality (the PSNR column): which fm=auto prefers
    *[("jxl", f"q{q} effort {e}", {"quality": q, "effort": e}) for q, e in ((70, 5), (70, 7), (80, 7))],
]


def encoders(source: str, width: int, runs: int) -> list[dict[str, object]]:
    """Size against time of each encoder setting, on the photo resized to `width` once (resizing not timed)."""
    picture = Image.open(io.BytesIO(source_bytes(source)))
    picture = ImageOps.exif_transpose(picture)
    picture.thumbnail((width, width * 10), Image.Resampling.LANCZOS)
    picture = picture.convert("RGB")

    def encode(fmt: str, options: dict[str, object]) -> bytes:
        out = io.BytesIO()
        picture.save(out, PIL_NAMES[fmt], **options)
        return out.getvalue()

    import pillow_jxl  # noqa: F401 - registers JPEG XL with Pillow

    rows = []
    for fmt, label, options in ENCODER_SETTINGS:
        data = encode(fmt, options)
        ms = median_ms(lambda fmt=fmt, options=options: encode(fmt, options), runs)
        decoded = Image.open(io.BytesIO(data)).convert("RGB")
        rows.append({"format": fmt, "setting": label, "ms": ms, "kb": len(data) / 1000,
                     "psnr": psnr(decoded, picture)})
    return rows


PALETTE_SAMPLES = ("photos/progressive.jpg", "photos/lake.webp", "graphics/alpha.png", "photos/2024/street.jpg")


def palettes(size: tuple[int, int]) -> list[dict[str, object]]:
    """The animation maker's GIF palette: one per frame or one shared, dithered or not: bytes and PSNR of each frame
    against the same frame rendered alone as PNG (four different sample pictures, as a slideshow GIF has)."""
    from imageorigin.model import Fit, canonicalize

    originals = [(ROOT / "samples" / key).read_bytes() for key in PALETTE_SAMPLES]
    canvas = canonicalize(ResizeSpec(width=size[0], height=size[1], fit=Fit.COVER, format=Format.GIF))
    alone = replace(canvas, format=Format.PNG, quality=None)
    references = [Image.open(io.BytesIO(transform.render(d, alone, Limits()).data)).convert("RGB") for d in originals]
    rows = []
    for dither, label in ((Image.Dither.FLOYDSTEINBERG, "floyd-steinberg"), (Image.Dither.NONE, "none")):
        for shared in (False, True):
            out = transform.render_animation(originals, canvas, [300] * len(originals), 0, Limits(), None, dither,
                                             shared)
            image, scores = Image.open(io.BytesIO(out.data)), []
            for index, reference in enumerate(references):
                image.seek(index)
                scores.append(psnr(image.convert("RGB"), reference))
            rows.append({"dither": label, "palette": "shared" if shared else "per frame",
                         "kb": len(out.data) / 1000, "psnr": statistics.mean(scores)})
    return rows


IMPORT_TIME = "import time; t = time.perf_counter(); {imports}; print((time.perf_counter() - t) * 1000)"

# A fresh process: import the handler, then answer one 400 px request through lambda_handler on the in-memory store.
# Times are from the process's own start (the parent's clock at spawn, passed in): interpreter, imports, request.
FIRST_RESPONSE = """
import json, sys, time
spawned = float(sys.argv[1])
started = time.time()
import imageorigin.handlers.api as api
imported = time.time()
from imageorigin import runtime
from tests.fakes import MemoryStore
memory = MemoryStore()
memory.add_original("photo.jpg", open(sys.argv[2], "rb").read())
runtime.store = lambda: memory
event = json.load(open(sys.argv[3]))
event.update(path="/photo.jpg", httpMethod="GET", pathParameters={"proxy": "photo.jpg"},
             queryStringParameters={"w": "400"}, multiValueQueryStringParameters={"w": ["400"]})
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "bench", 1769, "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    def get_remaining_time_in_millis(self):
        return 30_000
ready = time.time()
answer = api.lambda_handler(event, Context())
done = time.time()
assert answer["statusCode"] == 200, answer
print(json.dumps({"interpreter_ms": (started - spawned) * 1000, "import_ms": (imported - started) * 1000,
                  "request_ms": (done - ready) * 1000, "first_response_ms": (done - spawned) * 1000}))
"""


def cold_start(runs: int, source: str) -> dict[str, object]:
    """Import cost of the handler against boto3 + Pillow alone, each in fresh processes; heavy imports listed."""
    path = os.pathsep.join((str(ROOT / "functions" / "resize"), str(ROOT)))  # the package, and tests.fakes
    env = dict(os.environ, PYTHONPATH=path, POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_NAMESPACE="bench",
               AWS_DEFAULT_REGION="us-east-1")

    def fresh(imports: str) -> float:
        out = subprocess.run([sys.executable, "-c", IMPORT_TIME.format(imports=imports)], capture_output=True,
                             text=True, check=True, env=env)
        return float(out.stdout)

    handler = statistics.median(fresh("import imageorigin.handlers.api") for _ in range(runs))
    baseline = statistics.median(fresh("import boto3, PIL.Image") for _ in range(runs))
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c", "import imageorigin.handlers.api"],
                           capture_output=True, text=True, env=env).stderr
    heavy = {}
    for line in trace.splitlines():  # "import time: self | cumulative |  <two spaces per nesting level>name"
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name, depth = fields[2].strip(), (len(fields[2]) - len(fields[2].lstrip()) - 1) // 2
        if depth == 1 and int(fields[1]) >= 3_000:
            heavy[name] = int(fields[1]) / 1000  # what the handler module imports, 3 ms or more with its own imports
    lazy = {name: name in trace
            for name in ("pillow_heif", "PIL.AvifImagePlugin", "aws_xray_sdk", "boto3", "cykooz_resizer")}
    return {"handler_import_ms": handler, "boto3_pillow_import_ms": baseline, "ratio": handler / baseline,
            "heavy_imports_ms": heavy, "imported_at_start": lazy, "first_response": first_response(source, runs, env)}


def first_response(source: str, runs: int, env: dict[str, str]) -> dict[str, float]:
    """Process start to the first 400 px answer of the real handler (in-memory store), medians of fresh processes."""
    photo = GENERATED / "cold-start-original"
    GENERATED.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(source_bytes(source))
    event = ROOT / "events" / "api_resize.json"
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", FIRST_RESPONSE, repr(time.time()), str(photo), str(event)],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            raise RuntimeError(f"the cold-start process failed:\n{out.stderr}")
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(sample[name] for sample in samples) for name in samples[0]}


def table(rows: list[Row]) -> str:
    head = (f"{'case':40} {'ours ms':>8} {'vips ms':>8} {'ours/vips':>9} {'/default':>9} {'usual/ours':>10} "
            f"{'ours dB':>8} "
            f"{'vips dB':>8} {'usual dB':>8} {'ours KB':>8} {'vips KB':>8} {'ours MB':>8} {'vips MB':>8}")
    lines = [head, "-" * len(head)]

    def fmt(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None else "-"

    for r in rows:
        lines.append(
            f"{r.case:40} {r.ours_ms:8.1f} {fmt(r.vips_ms, '8.1f'):>8} {fmt(r.vs_vips, '9.2f'):>9} "
            f"{fmt(r.vs_vips_default, '9.2f'):>9} {r.vs_usual:10.2f} {r.ours_psnr:8.1f} {fmt(r.vips_psnr, '8.1f'):>8} "
            f"{fmt(r.usual_psnr, '8.1f'):>8} "
            f"{r.ours_bytes / 1000:8.1f} {fmt(r.vips_bytes and r.vips_bytes / 1000, '8.1f'):>8} "
            f"{fmt(r.ours_peak_mb, '8.1f'):>8} {fmt(r.vips_peak_mb, '8.1f'):>8}"
        )
    return "\n".join(lines)


# --tiny checks that every table is made, not what it says: small sizes keep CI's run short
ENCODER_WIDTH_TINY = 240
LADDER_TINY = (320, 160, 30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="one small generated case, one run (CI's check)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)

    cases = TINY_CASES if args.tiny else (CORPUS_CASES if CORPUS.is_dir() else GENERATED_CASES)
    runs = 1 if args.tiny else args.runs
    with_vips = vips_available()
    if with_vips:
        import pyvips

        pyvips.cache_set_max(0)
        pyvips.concurrency_set(1)  # one thread each, as on a one-vCPU Lambda
    one_thread()
    rows = [run_case(case, runs, with_vips, memory=not args.tiny) for case in cases]
    ladder_source = TINY_CASES[0].source if args.tiny else (
        "jpeg_12mp_galaxy_s7edge.jpg" if CORPUS.is_dir() else GENERATED_CASES[0].source)
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "pillow": Image.__version__, "resizer": _version("cykooz.resizer"),
                    "libvips": ".".join(str(__import__("pyvips").version(i)) for i in range(3)) if with_vips else None},
        "runs": runs,
        "cases": [asdict(r) | {"ours_vs_vips": r.vs_vips, "ours_vs_vips_default": r.vs_vips_default,
                               "usual_vs_ours": r.vs_usual} for r in rows],
        "prewarm": prewarm(ladder_source, runs, with_vips, LADDER_TINY if args.tiny else None),
        "stages": stages(ladder_source, 100 if args.tiny else 1200, runs) if with_vips else None,
        "cold_start": cold_start(1 if args.tiny else 7, ladder_source),
        "encoders": encoders(ladder_source, ENCODER_WIDTH_TINY if args.tiny else 1200, 1 if args.tiny else 5),
        "palettes": palettes((80, 60) if args.tiny else (320, 240)),
    }
    print(table(rows))
    pre = result["prewarm"]
    vs_vips = (f"; libvips, same ladder: {pre['vips_ms']:.0f} ms (ours/vips {pre['ours_ms'] / pre['vips_ms']:.2f})"
               if pre["vips_ms"] else "")
    print(f"\npre-warm ladder ({pre['variants']} variants): {pre['ours_ms']:.0f} ms; "
          f"classic {pre['classic_ms']:.0f} ms ({pre['speedup']:.1f}x faster){vs_vips}")
    print(f"  its largest member ({pre['largest_member']}) {pre['largest_ms']:.0f} ms, the ladder "
          f"{pre['ladder_vs_largest']:.2f}x that; encoding the {pre['variants']} variants alone takes "
          f"{pre['encodes_ms']:.0f} ms, the smaller sizes' {pre['smaller_encodes_ms']:.0f} ms, so no ladder can cost "
          f"under {pre['floor_vs_largest']:.2f}x its largest member")
    if result["stages"]:
        st = result["stages"]
        print(f"\nstep by step, {ladder_source} to {st['resized']} JPEG (ours vs libvips, same work; "
              f"decoded at {st['decoded']}): " + ", ".join(
                  f"{step} {st[step]['ours_ms']:.1f} vs {st[step]['vips_ms']:.1f} ms ({st[step]['ratio']:.2f}x)"
                  for step in ("decode", "resize", "encode")))
    cold = result["cold_start"]
    print(f"cold start: handler import {cold['handler_import_ms']:.0f} ms vs boto3 + Pillow "
          f"{cold['boto3_pillow_import_ms']:.0f} ms ({cold['ratio']:.2f}x); imported at start: "
          f"{', '.join(k for k, v in cold['imported_at_start'].items() if v) or 'none of the lazy ones'}")
    first = cold["first_response"]
    print(f"first response (fresh process, 400 px from {ladder_source}, in-memory store): "
          f"{first['first_response_ms']:.0f} ms = interpreter {first['interpreter_ms']:.0f} + imports "
          f"{first['import_ms']:.0f} + request {first['request_ms']:.0f}")
    print("heaviest imports (ms, -X importtime): "
          + ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(cold["heavy_imports_ms"].items(), key=lambda i: -i[1])))
    print(f"\nencoders, {ladder_source} at {ENCODER_WIDTH_TINY if args.tiny else 1200} px (time to encode, size):")
    for row in result["encoders"]:
        print(f"  {row['format']:5} {row['setting']:20} {row['ms']:7.1f} ms {row['kb']:8.1f} KB {row['psnr']:6.2f} dB")
    print("\nanimation maker, GIF of four sample pictures (bytes, mean PSNR of the frames):")
    for row in result["palettes"]:
        print(f"  {row['dither']:16} {row['palette']:10} {row['kb']:7.1f} KB {row['psnr']:6.2f} dB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
