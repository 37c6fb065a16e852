"""Where BrewSLM keeps its state, read from the environment each time it is asked.

BREWSLM_HOME            state folder (default ~/.brewslm): the database and one folder per project
BREWSLM_DATABASE_URL    SQLAlchemy URL; default sqlite:///$BREWSLM_HOME/brewslm.db
BREWSLM_MODELS_DIR      where built-in models are cached (default $BREWSLM_HOME/models)
BREWSLM_API_TOKEN       bearer token the REST API requires when bound beyond loopback
BREWSLM_STRICT_CODES    "1" makes an unknown reason code raise (tests set it) instead of
                        being stored as an invalid_reason_code system event
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def home_path() -> str:
    return os.path.expanduser(os.environ.get("BREWSLM_HOME") or "~/.brewslm")


def home() -> Path:
    path = Path(home_path())
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    # Called for every event: string work only, no filesystem calls.
    return os.environ.get("BREWSLM_DATABASE_URL") or f"sqlite:///{home_path()}/brewslm.db"


def projects_dir() -> Path:
    path = home() / "projects"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = Path(os.environ.get("BREWSLM_MODELS_DIR") or home() / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


# The web UI keeps the API token in this cookie after /login (HttpOnly, SameSite=Strict); the
# REST API and the project endpoints accept it as well as a bearer header.
TOKEN_COOKIE = "brewslm_token"


def api_token() -> str | None:
    return os.environ.get("BREWSLM_API_TOKEN") or None


def token_matches(given: str | None) -> bool:
    """True when `given` is the server's BREWSLM_API_TOKEN (constant time; never when unset)."""
    expected, given = api_token() or "", (given or "").strip()
    return bool(expected and given) and secrets.compare_digest(given.encode(), expected.encode())


def credentials_ok(authorization: str | None, cookie: str | None) -> bool:
    """A request's credentials: a bearer Authorization header, or, with no header at all, the
    web UI's token cookie, holding the server's token. The one rule of the API, the UI and the
    project endpoints."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if not scheme:
        return token_matches(cookie)
    return scheme.lower() == "bearer" and token_matches(given)


def strict_reason_codes() -> bool:
    return os.environ.get("BREWSLM_STRICT_CODES") == "1"
