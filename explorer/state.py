"""The state of one explorer session: what the map shows. Views are functions of it."""

from __future__ import annotations

import param

METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "pca_tsne": "PCA → t-SNE"}


class ExplorerState(param.Parameterized):
    """Feature space, projection method and colour-by attribute of one browser session."""

    space = param.Selector(objects=[], doc="feature space shown, as model/layer")
    method = param.Selector(objects=[], doc="2D projection method")
    color_by = param.Selector(objects=[], doc="attribute the points are coloured by")
