"""The layer strip, the "from which layer on" picture: every layer of the model shown as a small
map, shallowest first, with the same method, colouring, filter and isolated values as the main
map (the maps of one store are aligned: precompute/stats/align.py), each with its kNN
separability of the colour-by attribute under it. Clicking a layer opens it in the main map.

Each small map is rendered on the server like the main map and travels as a PNG inside the
strip's data; the strip is built in the browser with `textContent`, like the legend. It is
rendered only while the Layers tab is open (a filter changed meanwhile costs nothing: one
small map per layer at 1M points takes 50-100 ms, docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import param
from panel.reactive import ReactiveHTML
from PIL import Image

from explorer.data import CLUSTER, ExplorerData
from explorer.legend import MAKE_ELEMENT_JS
from explorer.scatter import EXTENT, MapRequest, is_whole_map, map_image
from explorer.state import METHOD_LABELS
from precompute.store import SpaceKey

TILE_PX = 180  # each small map's side
KNN = "knn"  # the separability measure written under each map
TILES_KEPT = 64  # small maps (PNG, tens of KB each) kept per process
LAYERS_TAB = "Layers"  # the tab the strip is in: rendered only while it is open
# How many pixels a point grows by in a small map, by the number of images: one spread for all
# layers, so a layer whose points lie apart does not look sparser than one whose points overlap
SPREAD_PX = ((2_000, 2), (20_000, 1))  # (up to this many images, pixels); beyond: none


class LayerStrip(ReactiveHTML):
    """The strip in the page, drawn from `content` (see `strip_content`); a click on a layer
    goes to `on_pick(space)`."""

    content = param.Dict(default={}, allow_refs=True, doc="what strip_content returns")
    picked = param.String(default="", doc="the space of the layer last clicked")

    _template = """
<div id="box" class="fse-strip-box">
  <div id="title" class="fse-strip-title"></div>
  <div id="tiles" class="fse-strip-tiles" onclick="${script('pick')}"></div>
</div>"""
    _scripts = {
        "pick": """
          const space = event.target.value;
          if (!space) return;  // a click between the tiles
          data.picked = '';  // the same layer clicked twice still reaches the server
          data.picked = space;""",
        "render": "self.draw()",
        "content": "self.draw()",
        "draw": """
          const strip = data.content;""" + MAKE_ELEMENT_JS + """
          title.textContent = strip.title || '';
          tiles.replaceChildren();
          for (const tile of strip.tiles || []) {
            const button = make('button', 'fse-strip-tile' + (tile.shown ? ' fse-shown' : ''));
            button.type = 'button';
            button.value = tile.space;
            const image = make('img');
            image.src = tile.image;
            image.alt = tile.layer;
            button.append(image, make('span', 'fse-strip-layer', tile.layer),
                          make('span', 'fse-strip-score', tile.score));
            tiles.append(button);
          }""",
    }

    def __init__(self, on_pick: Callable[[str], None], **params):
        super().__init__(**params)

        def picked(event: param.parameterized.Event) -> None:
            if event.new:  # the reset to '' before each click is no pick
                on_pick(event.new)

        self.param.watch(picked, "picked")


def strip_spaces(data: ExplorerData, space: SpaceKey) -> list[SpaceKey]:
    """The layers of `space`'s backbone as pretrained, then those of its fine-tuned run when
    `space` is one (a fine-tuned run usually embeds its penultimate layer only), each in the
    store's order (shallowest first)."""
    pretrained = [s for s in data.spaces if s.backbone == space.backbone and s.pretrained]
    return pretrained + [s for s in data.spaces if s.model == space.model and not s.pretrained]


def strip_content(data: ExplorerData, space: str, method: str, color_by: str,
                  mask: np.ndarray | None = None, isolated: Sequence[str] = (),
                  hide_filtered: bool = False, tab: str = LAYERS_TAB) -> dict[str, Any]:
    """The strip for the model of feature space `space`: per layer its small map (`method`
    where the layer has it, else its best one), its name, and its kNN accuracy for `color_by`
    against the shuffled-label baseline, as plain values. While `tab` is not the Layers tab
    nothing is rendered (the strip keeps what it shows)."""
    if tab != LAYERS_TAB:
        raise param.parameterized.Skip()
    shown = SpaceKey.parse(space)
    scores = _knn_scores(data, color_by)
    spread = next((px for most, px in SPREAD_PX if len(data) <= most), 0)
    tiles = []
    for layer in strip_spaces(data, shown):
        drawn = method if method in data.methods[layer] else data.best_method(layer)
        # a space's clusters are its own: "cluster 3" isolated here is no cluster of another
        kept = tuple(isolated) if color_by != CLUSTER or layer == shown else ()
        request = MapRequest(str(layer), drawn, color_by, EXTENT, EXTENT, TILE_PX, TILE_PX,
                             mask=mask, hide_filtered=hide_filtered, isolated=kept,
                             glyph_limit=0, spread=spread)
        score = scores.get(str(layer))
        tiles.append({
            "space": str(layer), "layer": layer_name(data, layer), "shown": layer == shown,
            "image": tile_png(data, request),
            "score": "no score" if score is None
                     else f"kNN {score[0]:.2f} (chance {score[1]:.2f})",
        })
    return {"title": f"Every layer of {shown.backbone}, coloured by {color_by} "
                     f"({METHOD_LABELS.get(method, method)} where the layer has it)",
            "tiles": tiles}


def layer_name(data: ExplorerData, space: SpaceKey) -> str:
    """A layer's name in the strip: its run when fine-tuned, then the layer and its depth."""
    layer = data.layer_label(space)
    return layer if space.pretrained else f"{space.run} · {layer}"


def tile_png(data: ExplorerData, request: MapRequest) -> str:
    """A data URI of the map `request` asks for, as PNG (blank when no point is drawn); the
    whole map's is made once per process."""
    if is_whole_map(request):
        return data.derived(("strip tile", request), lambda: _png(map_image(data, request)),
                            keep=TILES_KEPT)
    return _png(map_image(data, request))


def _png(rgba: np.ndarray | None) -> str:
    pixels = np.zeros((TILE_PX, TILE_PX, 4), np.uint8) if rgba is None else rgba
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _knn_scores(data: ExplorerData, attribute: str) -> dict[str, tuple[float, float]]:
    """Each space's kNN accuracy for `attribute` over all images, with its baseline."""
    table = data.separability()
    if table is None:
        return {}
    chosen = table[(table["metric"] == KNN) & (table["given"] == "")
                   & (table["attribute"] == attribute)]
    return {str(row.space): (float(row.value), float(row.baseline))
            for row in chosen.itertuples()}


STRIP_CSS = """
.fse-strip-title { font-weight: 600; margin: 4px 0; }
.fse-strip-tiles { display: flex; gap: 8px; }
.fse-strip-tile { flex: 1 1 0; min-width: 0; max-width: 196px; display: flex;
  flex-direction: column; align-items: center; gap: 2px; border: 1px solid #ddd;
  border-radius: 4px; background: #fff; padding: 4px; cursor: pointer; font-family: inherit;
  color: inherit; }
.fse-strip-tile:hover { border-color: #2f6690; }
.fse-strip-tile.fse-shown { border: 2px solid #2f6690; }
.fse-strip-tile * { pointer-events: none; }
.fse-strip-tile img { width: 100%; max-width: 180px; aspect-ratio: 1; }
.fse-strip-layer { font-size: 13px; font-weight: 600; overflow-wrap: anywhere;
  text-align: center; }
.fse-strip-score { font-size: 12px; color: #555; font-variant-numeric: tabular-nums;
  text-align: center; }
"""
