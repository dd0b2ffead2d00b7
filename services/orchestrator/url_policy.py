"""Which files and object-store prefixes the front door may read problem sets from and
write job results to.

A SubmitJob names a problem set by URL and may name where its results go. Without a
policy the front door would read any file its pod can (its service-account token, other
teams' results) and fetch any URL fsspec can reach (server-side request forgery), and
write results anywhere it may write. In a cluster the chart always sets
`START_ORCHESTRATOR_ALLOWED_URL_PREFIXES` (the results root plus what the operator adds);
on a laptop, where the caller owns the files anyway, it is unset and any URL goes.

A URL is inside a prefix on whole path components: `/data` admits `/data/x.jsonl`, never
`/data-private/x`. Local paths are resolved first (`..` and symbolic links), so neither
leads out of an allowed folder.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

from services.common.errors import PermissionDenied

ENV = "START_ORCHESTRATOR_ALLOWED_URL_PREFIXES"


def normal_url(url: str) -> str:
    """One spelling per location: `file://` and local paths resolved, object-store paths
    with `..` and repeated slashes folded."""
    url = url.strip()
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if "://" not in url:
        return os.path.realpath(url)
    scheme, rest = url.split("://", 1)
    return f"{scheme.lower()}://{posixpath.normpath('/' + rest).lstrip('/')}"


def inside(url: str, prefix: str) -> bool:
    url, prefix = normal_url(url), normal_url(prefix).rstrip("/")
    return url == prefix or url.startswith(prefix + "/")


def check_url_allowed(field: str, url: str, prefixes: Sequence[str] | None) -> None:
    """PERMISSION_DENIED unless `url` is inside one of `prefixes` (None: no policy)."""
    if prefixes is None or any(inside(url, prefix) for prefix in prefixes):
        return
    allowed = ", ".join(prefixes) or "(none)"
    raise PermissionDenied(
        f"{field}: {url} is outside the locations this front door may use ({allowed}); "
        f"put the file under one of them, send the problems inline, or ask the operator to add "
        f"a prefix to {ENV}"
    )
