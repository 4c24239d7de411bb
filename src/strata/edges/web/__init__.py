"""strata in the browser: a web app served by the same process at ``/`` and ``/ui``.

Everything it shows comes from strata's own REST API (``/v1/...``), called from the page
exactly as any client would, so the app can do nothing a client cannot. The assets are plain
ES modules and one stylesheet, written by hand and shipped as package data: no CDN, no build
step, and it works offline.
"""

from strata.edges.web.app import STATIC, router

__all__ = ["STATIC", "router"]
