"""Query a new image: upload it, see its nearest images, a fine-tuned model's label, and where
it lands on the current map. The model is loaded on first use only (the app does not import torch at
start-up), once per process and feature space, and runs off the event loop
(explorer/model_work.py)."""

from __future__ import annotations

import base64
import html
import io
import logging

import numpy as np
import panel as pn

from explorer.cards import neighbour_tile, placeholder
from explorer.data import ExplorerData
from explorer.into_view import IntoView
from explorer.model_work import off_event_loop, pipeline_notice, query_model
from explorer.state import METHOD_LABELS, ExplorerState
from precompute.errors import StoreError
from precompute.store import SpaceKey

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 20
MAX_UPLOAD_PIXELS = 50_000_000  # a decompression-bomb cap for uploads, whatever the store's
QUERY_NEIGHBOURS = 12


def decode_upload(data: ExplorerData, payload: bytes):
    """The uploaded bytes as an RGB image, or ImageRejected with a reason a person can read."""
    from precompute.images import DecodeOptions, ImageRejected, open_rgb

    if len(payload) > MAX_UPLOAD_MB * 1024 * 1024:
        raise ImageRejected("too large", f"the upload limit is {MAX_UPLOAD_MB} MB")
    decode = data.store.images_meta()["decode"]
    options = DecodeOptions(
        max_pixels=min(int(decode["max_pixels"]), MAX_UPLOAD_PIXELS),
        crop_white_border=bool(decode["crop_white_border"]),
    )
    return open_rgb(io.BytesIO(payload), options)


def query_panel(data: ExplorerData, state: ExplorerState) -> pn.Column:
    """An upload box; the neighbours, a fine-tuned space's label and a marker on the map for
    the upload. Without the pipeline extra (torch), a line saying how to install it instead."""
    notice = pipeline_notice("Querying an image", "fse-query-result")
    if notice:
        return notice
    dropper = pn.widgets.FileDropper(
        accepted_filetypes=["image/*"], max_file_size=f"{MAX_UPLOAD_MB}MB", multiple=False,
        css_classes=["fse-upload"], sizing_mode="stretch_width", height=140,
    )
    result = pn.pane.HTML(placeholder("Drop an image to see where it lands in this feature "
                                      "space."), sizing_mode="stretch_width",
                          css_classes=["fse-query-result"])
    grid = pn.FlexBox(sizing_mode="stretch_width", css_classes=["fse-query-neighbours"])
    band = IntoView()  # over the first row of neighbours, the card above it: shown as they land

    async def analyse(event) -> None:
        if not event.new:
            return
        name, payload = next(iter(event.new.items()))
        payload = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) \
            else payload
        result.object, grid.objects = placeholder(f"Looking at {name}…"), []
        try:
            image = decode_upload(data, payload)
        except Exception as exc:  # ImageRejected, or anything a hostile file provokes
            reason = getattr(exc, "reason", "not a usable image")
            result.object = _message(f"{name}: {reason}. Upload a JPEG, PNG or WebP photo.")
            state.param.update(query_vector=None, query_point=None)
            return
        space, method = SpaceKey.parse(state.space), state.method

        def look_up():
            model = query_model(data, space)
            vector, probabilities = model.embed(image)
            rows, similarities = data.search_vector(space, vector, QUERY_NEIGHBOURS)
            return model, vector, probabilities, rows, similarities, placed(space, method,
                                                                            vector)

        try:
            model, vector, probabilities, rows, similarities, point = await off_event_loop(
                look_up)
            state.param.update(query_vector=vector, query_point=point)
        except Exception:
            log.exception("query of %s failed", name)
            result.object = _message(f"{name} could not be analysed; see the server log.")
            return
        result.object = _summary(data, state, name, image, model, probabilities, rows)
        grid.objects = [
            pn.pane.HTML(neighbour_tile(data, row, similarity, space, state.color_by))
            for row, similarity in zip(rows, similarities, strict=True)
        ]
        band.show()

    def follow_view(event) -> None:
        if state.query_vector is None:
            return
        if event.name == "space":  # the upload's embedding belongs to the previous space
            state.param.update(query_vector=None, query_point=None)
            result.object, grid.objects = placeholder("Drop the image again for this space."), []
        else:
            state.query_point = placed(SpaceKey.parse(state.space), state.method,
                                       state.query_vector)

    def placed(space: SpaceKey, method: str, vector: np.ndarray) -> tuple[float, float] | None:
        """Where the upload lands on the map, or None (and the reason in the log) when the
        map's reducer cannot be used, e.g. saved by other library versions."""
        try:
            return data.place(space, method, vector)
        except StoreError as exc:
            log.warning("%s", exc)
            return None

    dropper.param.watch(analyse, "value")
    state.param.watch(follow_view, ["space", "method"])
    return pn.Column(dropper, result, band, grid, sizing_mode="stretch_width")


def _summary(data, state, name, image, model, probabilities, rows) -> str:
    """The upload's thumbnail, the model's label and the neighbours' vote."""
    thumbnail = image.copy()
    thumbnail.thumbnail((160, 160))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    top = int(np.argmax(probabilities))
    votes = data.column(state.color_by, SpaceKey.parse(state.space)).iloc[rows].astype(
        "string").value_counts()
    vote, share = str(votes.index[0]), votes.iloc[0] / len(rows)
    # a pretrained network's label is one of its ImageNet classes: not this dataset's
    fine_tuned = not SpaceKey.parse(state.space).pretrained and top < len(model.classes or [])
    lines = [("model's label", f"{model.classes[top]} ({probabilities[top]:.0%})")
             ] if fine_tuned else []
    lines += [
        (f"{state.color_by} by neighbours", f"{vote} ({share:.0%} of {len(rows)})"),
        ("on the map", f"{METHOD_LABELS.get(state.method, state.method)} marker ★"),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in lines)
    return (f"<div class='fse-card fse-query-card'><img src='{uri}' alt=''>"
            f"<table><tr><th>file</th><td>{html.escape(name)}</td></tr>{table}</table></div>")


def _message(text: str) -> str:
    return f"<div class='fse-query-message'>{html.escape(text)}</div>"
