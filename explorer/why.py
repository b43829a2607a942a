"""“Why this label?”: a Grad-CAM heatmap over the clicked image, from the current space's model,
showing which regions drove its top class."""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path

import colorcet
import numpy as np
import panel as pn
import param
from PIL import Image

from explorer.cards import placeholder
from explorer.data import ExplorerData
from explorer.into_view import IntoView
from explorer.model_work import off_event_loop, pipeline_notice, query_model
from explorer.state import ExplorerState
from precompute.store import PATH_COLUMN, SpaceKey

log = logging.getLogger(__name__)

OVERLAY_SIZE = 256
HEAT_ALPHA = 0.45


def heatmap_overlay(image: Image.Image, cam: np.ndarray) -> Image.Image:
    """The image with the class-activation map laid over it in colour."""
    base = image.convert("RGB")
    base.thumbnail((OVERLAY_SIZE, OVERLAY_SIZE))
    heat = Image.fromarray((cam * 255).astype(np.uint8), mode="L").resize(
        base.size, Image.Resampling.BICUBIC
    )
    palette = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)]
                        for c in colorcet.palette["fire"]], dtype=np.uint8)
    coloured = Image.fromarray(palette[np.asarray(heat)], mode="RGB")
    return Image.blend(base, coloured, HEAT_ALPHA)


class WhyPanel(pn.viewable.Viewer):
    """A button under the neighbours, shown once an image is clicked, that explains its label;
    the explanation is forgotten when the clicked image or the space changes. Without the
    pipeline extra (torch), a line saying how to install it instead."""

    data = param.ClassSelector(class_=ExplorerData, constant=True)
    state = param.ClassSelector(class_=ExplorerState, constant=True)
    explanation = param.String(default="", doc="HTML: the heatmap card, or what is happening")

    def __init__(self, **params):
        super().__init__(**params)
        self._band = IntoView()  # over the card: scrolled into view as it lands

    def __panel__(self) -> pn.viewable.Viewable:
        notice = pipeline_notice("Grad-CAM", "fse-why-result")
        if notice:
            return notice
        button = pn.widgets.Button(
            label="Why this label? (Grad-CAM)", color="primary", variant="outline",
            css_classes=["fse-why"],
            visible=pn.bind(lambda focus: focus is not None, self.state.param.focus))
        button.on_click(self.explain)
        return pn.Column(button, self._band,
                         pn.pane.HTML(self.param.explanation, sizing_mode="stretch_width",
                                      css_classes=["fse-why-result"]),
                         sizing_mode="stretch_width")

    @param.depends("state.focus", "state.space", watch=True)
    def _forget(self) -> None:
        self.explanation = ""

    async def explain(self, _event=None) -> None:
        """Grad-CAM of the clicked image, computed on the model thread."""
        data, row = self.data, self.state.focus
        if row is None:
            return
        self.explanation = placeholder("Computing Grad-CAM…")
        space = SpaceKey.parse(self.state.space)

        def grad_cam():
            from precompute.images import DecodeOptions, open_rgb

            meta = data.store.images_meta()
            path = Path(meta["root"]) / data.column(PATH_COLUMN).iloc[row]
            image = open_rgb(path, DecodeOptions(**meta["decode"]))
            model = query_model(data, space)
            cam, target = model.grad_cam(image)
            _, probabilities = model.embed(image)
            return image, model, cam, target, probabilities

        try:
            image, model, cam, target, probabilities = await off_event_loop(grad_cam)
        except Exception:
            log.exception("Grad-CAM for row %s failed", row)
            self.explanation = placeholder("The image could not be explained; see the server "
                                           "log.")
            return
        label = (model.classes[target] if model.classes and target < len(model.classes)
                 else f"ImageNet class {target}")
        buffer = io.BytesIO()
        heatmap_overlay(image, cam).save(buffer, format="PNG")
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        self.explanation = (
            f"<div class='fse-why-card' data-row='{int(row)}'><img src='{uri}' alt=''>"
            f"<div>{html.escape(model.backbone.name)} says <b>{html.escape(label)}</b> "
            f"({probabilities[target]:.0%}); bright regions drove that answer.</div></div>"
        )
        self._band.show()
