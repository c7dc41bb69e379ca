"""Tell "MLflow is down" apart from "MLflow said no" when an MLflow call fails.

An ``MlflowException`` after the client's own retries reads the same whether the server refused the
request or could not be reached; a short probe of the server's ``/health`` endpoint, made only on this
failure path, decides which error to raise.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request

from mlflow.exceptions import MlflowException

from pipeshield.registry._errors import MlflowUnreachableError, RegistryError

PROBE_TIMEOUT = 5.0


def unreachable(tracking_uri: str | None, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the HTTP tracking server at ``tracking_uri`` cannot be reached, or None when it answers (or is not HTTP)."""
    if not tracking_uri or urllib.parse.urlsplit(tracking_uri).scheme not in ("http", "https"):
        return None
    try:
        # the scheme is checked above: http(s) only, to the configured tracking server
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout):  # nosec B310
            return None
    except urllib.error.HTTPError:
        return None  # it answered, if unhappily: the MLflow error itself is the better message
    except urllib.error.URLError as exc:
        reason = exc.reason
        return reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    except (TimeoutError, socket.timeout):
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def mlflow_error(tracking_uri: str | None, what: str, exc: MlflowException) -> RegistryError:
    """``MlflowUnreachableError`` naming the server when it is down, else ``RegistryError`` with MLflow's message."""
    why = unreachable(tracking_uri)
    if why is not None:
        return MlflowUnreachableError(f"{what}: MLflow at {tracking_uri} is unreachable ({why}); "
                                      "retry once it is back")
    return RegistryError(f"{what}: {exc.message}")
