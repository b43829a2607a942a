"""Close Panel's `/components/<module>/<Model>/<attribute>/<file>` route to modules the page
does not use.

Panel serves files that a component lists in its resource attributes through that route, and
its handler (`panel.io.server.ComponentResourceHandler`) imports `<module>` before checking
anything: an unauthenticated GET of `/components/this/X/_css/a` runs `import this` (the Zen of
Python lands in the server's log), `/components/torch/...` imports torch, and so on for any
installed module. Panel has no setting for the route, so `restrict_component_route` wraps the
handler's `parse_url_path`: a path whose module is not in `allowed` gets 404 before anything is
imported. The explorer's page requests nothing under `/components/` (Panel's own files come
from `/static/extensions/panel/`), so by default no module is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

from tornado.web import HTTPError

SERVED_MODULES: tuple[str, ...] = ()  # module names, each allowing its submodules too


def restrict_component_route(allowed: Iterable[str] = SERVED_MODULES) -> None:
    """Let Panel's component-resource handler import and serve from `allowed` modules only
    (and their submodules); every other request gets 404. Applies to this process; calling it
    again replaces the earlier allow-list."""
    from panel.io.server import ComponentResourceHandler

    allowed = tuple(allowed)
    parse = getattr(ComponentResourceHandler.parse_url_path, "unrestricted",
                    ComponentResourceHandler.parse_url_path)

    def parse_url_path(self, path: str) -> str:
        module = path.split("/", 1)[0]
        if not any(module == name or module.startswith(name + ".") for name in allowed):
            raise HTTPError(404)
        return parse(self, path)

    parse_url_path.unrestricted = parse
    ComponentResourceHandler.parse_url_path = parse_url_path
