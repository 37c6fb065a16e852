"""Mount the web UI on the API app: templates, static assets, login, and every page router.

Pages read through the service layer (never their own logic) and render with Jinja2; buttons
call the REST API from app.js (a stage starts as a job and its progress streams back). Beyond
loopback the UI needs the API token too: /login stores it in an HttpOnly, SameSite=Strict cookie
that the API's token check accepts as well as a bearer header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from brewslm import __version__, config

HERE = Path(__file__).parent
TOKEN_COOKIE = config.TOKEN_COOKIE
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)


class LoginRequired(Exception):
    """A page was asked for without the token the server requires."""


def render(request: Request, template: str, status_code: int = 200, **context: Any
           ) -> HTMLResponse:
    """Render a page; every template gets `request`, `version` and whatever the page passes."""
    return templates.TemplateResponse(request, template, {"version": __version__, **context},
                                      status_code=status_code)


def token_ok(request: Request) -> bool:
    """True when the server needs no token or the cookie holds the right one."""
    if not request.app.state.require_token:
        return True
    return config.token_matches(request.cookies.get(TOKEN_COOKIE))


def require_login(request: Request) -> None:
    """Dependency of every page router."""
    if not token_ok(request):
        raise LoginRequired


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def figure_json(fig: Any) -> str:
    """A plotly figure as the JSON that app.js's `plot()` draws (safe inside a <script>)."""
    return fig.to_json().replace("</", "<\\/")


def add_ui(app: FastAPI) -> None:
    """Add the UI's static files, login and page routes to the API app."""
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    base = APIRouter(include_in_schema=False)

    @base.get("/ui/vendor/plotly.min.js")
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @base.get("/login")
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", next=_local(next), error=None)

    @base.post("/login")
    def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
        if not config.token_matches(token):
            return render(request, "login.html", status_code=401, next=_local(next),
                          error="That token is not the server's BREWSLM_API_TOKEN.")
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(TOKEN_COOKIE, token.strip(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    app.include_router(base)
    from brewslm.web.pages import ROUTERS

    for router in ROUTERS:
        app.include_router(router)


def _local(path: str) -> str:
    """Only same-site paths after login (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"
