"""The interactive API docs (`/docs`, sandbox mode only), served from this site alone.

Swagger UI's files are vendored under /static/swagger-ui (see VERSION.md there) and started by
/static/docs-init.js, so the page works offline and carries a content policy with no inline script
(`security_headers.DOCS_POLICY`). ReDoc is not offered: it would need its own bundle for the same
schema.
"""
from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.36.0"
ASSETS = ("/static/swagger-ui/swagger-ui.css", "/static/swagger-ui/swagger-ui-bundle.js",
          "/static/docs-init.js", "/static/swagger-ui/favicon-32x32.png")


def docs_html(title: str, openapi_url: str) -> str:
    css, bundle, init, icon = ASSETS
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · API docs</title>
<link rel="icon" type="image/png" href="{icon}">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


def add_docs(app: FastAPI, path: str = "/docs") -> None:
    """Serve Swagger UI for the app's schema at `path` (call only when the schema is published)."""
    page = docs_html(app.title, app.openapi_url or "/openapi.json")

    @app.get(path, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)
