"""The render pipeline: open -> plan and price -> decode -> analyse -> scale, orient, colour -> effects -> alpha ->
encode; one sequence for stills, pre-warm ladders and every frame of an animation. Pure Pillow: no AWS, no HTTP."""

from __future__ import annotations

from .limits import Limits
from .pipeline import Rendered, SourceInfo, probe, rasterized, render, render_animation, render_many, upright_size

__all__ = ["Limits", "Rendered", "SourceInfo", "probe", "rasterized", "render", "render_animation", "render_many",
           "upright_size"]
