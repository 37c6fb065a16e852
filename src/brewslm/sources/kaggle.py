"""The Kaggle datasets source: `kaggle:dataset:OWNER/SLUG[?file=NAME]`.

    brewslm ingest -p NAME kaggle:dataset:owner/support-tickets
    brewslm ingest -p NAME "kaggle:dataset:owner/support-tickets?file=train.csv"

Credentials come from KAGGLE_USERNAME + KAGGLE_KEY, else from kaggle.json in KAGGLE_CONFIG_DIR
(default ~/.kaggle); without them the source fails with ingest_kaggle_credentials_missing,
naming what is missing, before the `kaggle` package is even imported (it is optional and
imported only here, at open time). The dataset's files (or the one named) are downloaded into
the ingest workdir, zips are unpacked, and the folder is read like a local folder
(Record.file is the path inside it). Any download problem is ingest_kaggle_failed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from brewslm.errors import InputError
from brewslm.sources.base import OpenedSource
from brewslm.sources.local import open_path

_SPEC = re.compile(r"^kaggle:dataset:(?P<owner>[\w.-]+)/(?P<slug>[\w.-]+)"
                   r"(?:\?file=(?P<file>[^&]+))?$")
FORM = "kaggle:dataset:OWNER/SLUG[?file=NAME]"


@dataclass(frozen=True)
class KaggleRef:
    owner: str
    slug: str
    file: str | None

    @property
    def dataset(self) -> str:
        return f"{self.owner}/{self.slug}"


class KaggleSource:
    name = "kaggle"

    def claims(self, spec: str) -> bool:
        return spec.startswith("kaggle:")

    def open(self, spec: str, *, fmt: str | None = None, text_blocks: bool = False,
             workdir: Any = None) -> OpenedSource:
        ref = parse_spec(spec)
        find_credentials()
        base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="brewslm-kaggle-"))
        folder = download(ref, base / "kaggle" / f"{ref.owner}__{ref.slug}")
        return open_path(folder, spec=spec, kind="kaggle", fmt=fmt, text_blocks=text_blocks)


def parse_spec(spec: str) -> KaggleRef:
    match = _SPEC.match(spec)
    if not match:
        raise InputError("ingest_source_unsupported", f"{spec!r}: expected {FORM}", spec=spec)
    file = unquote(match["file"]) if match["file"] else None
    return KaggleRef(match["owner"], match["slug"], file)


def find_credentials(env: dict[str, str] | None = None) -> str:
    """Where the credentials are ("environment" or the kaggle.json path); InputError naming
    exactly what is missing when a username or key is found in neither place."""
    env = dict(os.environ) if env is None else env
    config = Path(env.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    user, key = env.get("KAGGLE_USERNAME"), env.get("KAGGLE_KEY")
    if user and key:
        return "environment"
    stored, problem = _read_config(config)
    missing = [var for var, value, field in (("KAGGLE_USERNAME", user, "username"),
                                             ("KAGGLE_KEY", key, "key"))
               if not value and not stored.get(field)]
    if not missing:
        return str(config)
    problem = problem or f"{config} has no " + " and no ".join(
        f'"{v.removeprefix("KAGGLE_").lower()}"' for v in missing)
    verb = "is" if len(missing) == 1 else "are"
    raise InputError("ingest_kaggle_credentials_missing",
                     f"kaggle: sources need credentials: {' and '.join(missing)} {verb} not set, "
                     f"and {problem}", missing=missing, config=str(config))


def _read_config(config: Path) -> tuple[dict[str, Any], str | None]:
    """(kaggle.json's content, why it cannot be used or None)."""
    if not config.is_file():
        return {}, f"{config} does not exist"
    try:
        stored = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {}, f"{config} cannot be read as JSON ({e})"
    return (stored, None) if isinstance(stored, dict) else ({}, f"{config} is not an object")


def download(ref: KaggleRef, folder: Path) -> Path:
    """Download the dataset (or its one file) into `folder`, unzip, return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    api = _api()
    try:
        if ref.file:
            api.dataset_download_file(ref.dataset, ref.file, path=str(folder), force=True,
                                      quiet=True)
        else:
            api.dataset_download_files(ref.dataset, path=str(folder), force=True, quiet=True,
                                       unzip=False)
    except (Exception, SystemExit) as e:  # the kaggle client may exit() on API errors
        raise InputError("ingest_kaggle_failed", f"kaggle could not download {ref.dataset}"
                         f"{' file ' + ref.file if ref.file else ''}: {type(e).__name__}: {e}",
                         dataset=ref.dataset) from e
    _unzip_all(folder)
    if not any(p.is_file() for p in folder.rglob("*")):
        raise InputError("ingest_kaggle_failed", f"kaggle downloaded nothing for {ref.dataset}",
                         dataset=ref.dataset)
    return folder


def _api() -> Any:
    """An authenticated KaggleApi; InputError if the package is missing or refuses."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as e:
        raise InputError("ingest_kaggle_failed", "kaggle: sources need the `kaggle` package, "
                         "which is not installed (pip install kaggle)") from e
    except (Exception, SystemExit) as e:  # importing kaggle authenticates, and may fail
        raise InputError("ingest_kaggle_failed", f"the kaggle package failed to load: "
                         f"{type(e).__name__}: {e}") from e
    try:
        api = KaggleApi()
        api.authenticate()
    except (Exception, SystemExit) as e:
        raise InputError("ingest_kaggle_failed", f"kaggle refused the credentials: "
                         f"{type(e).__name__}: {e}") from e
    return api


def _unzip_all(folder: Path) -> None:
    # Kaggle serves datasets (and large single files) as zips; the readers need the members.
    # zipfile drops ".." and absolute parts of member names, so nothing lands outside `folder`.
    for archive in sorted(folder.rglob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(archive.parent)
        except zipfile.BadZipFile as e:
            raise InputError("ingest_kaggle_failed", f"{archive.name} from kaggle is not a "
                             f"valid zip: {e}") from e
        archive.unlink()
