"""Localhost by default: `panel serve` listens on every interface unless given `--address`, so
the explorer itself declines sessions from other machines until the server was told otherwise
(`--address`, together with `--allow-websocket-origin` and ideally `--basic-auth` or OAuth)."""

from __future__ import annotations

import ipaddress
import sys

import panel as pn


def remote_access_configured(argv: list[str] | None = None) -> bool:
    """Whether the server was started with an explicit `--address`."""
    argv = sys.orig_argv if argv is None else argv
    return any(arg == "--address" or arg.startswith("--address=") for arg in argv)


def client_is_local() -> bool:
    """Whether the current session's browser connects from this machine (True outside a
    server, e.g. in a notebook)."""
    context = pn.state.curdoc.session_context if pn.state.curdoc else None
    request = getattr(context, "request", None)
    address = getattr(request, "remote_ip", None)
    if not address:
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def session_allowed() -> bool:
    """Local clients always; remote ones only when the server was bound on purpose."""
    return client_is_local() or remote_access_configured()
