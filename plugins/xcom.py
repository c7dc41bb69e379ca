"""``EncryptedXComBackend``: XCom values envelope-encrypted in the worker before they reach Airflow.

Enable with ``[core] xcom_backend = pipeshield.plugins.xcom.EncryptedXComBackend``. Modelled on the
common-io object-storage backend: a value is serialized with Airflow's serde, then sealed in a
pipeshield envelope (one provider call per value) bound to ``dag_id``/``run_id``/``task_id``/
``map_index``/``key``. Small envelopes are stored in the metadata DB (base64); envelopes of at least
``[pipeshield] xcom_objectstorage_threshold`` bytes go to ``[pipeshield] xcom_objectstorage_path``
(any ``ObjectStoragePath``) and only their path is stored. Options (section ``[pipeshield]``):

- ``xcom_key_name``: wrapping key (default: ``PIPESHIELD_WRAPPING_KEY``);
- ``xcom_vault_conn_id``: connection for :class:`~pipeshield.hooks.keys.KeyProviderHook`;
- ``xcom_objectstorage_path`` / ``xcom_objectstorage_threshold`` (default -1: always in the DB).

Reading checks that the envelope belongs to the reading task's DAG and to the XCom key asked for;
the metadata DB, the API and the UI only ever see ciphertext.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

from airflow.sdk import ObjectStoragePath
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.configuration import conf

from pipeshield.envelope import ContextMismatchError, decrypt_stream, encrypt_stream, read_header
from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.keys import KeyProvider

SECTION = "pipeshield"
MARKER = "__pipeshield_envelope__"


def _provider() -> tuple[KeyProvider, str]:
    hook = KeyProviderHook(
        vault_conn_id=conf.get(SECTION, "xcom_vault_conn_id", fallback=KeyProviderHook.default_conn_name)
    )
    key_name = conf.get(SECTION, "xcom_key_name", fallback=None) or hook.get_settings().wrapping_key
    return hook.get_provider(), key_name


def _reader_dag_id() -> str | None:
    """The DAG of the task reading the XCom, when a task is running."""
    from airflow.sdk import get_current_context

    try:
        return str(get_current_context()["dag"].dag_id)
    except (RuntimeError, KeyError):
        return None


class EncryptedXComBackend(BaseXCom):
    """Envelope-encrypts every XCom value; the plaintext exists only in the worker processes."""

    @staticmethod
    def serialize_value(  # type: ignore[override]
        value: Any, *, key: str | None = None, task_id: str | None = None, dag_id: str | None = None,
        run_id: str | None = None, map_index: int | None = None,
    ) -> Any:
        payload = json.dumps(BaseXCom.serialize_value(value)).encode("utf-8")
        binding = {"pipeshield": "xcom", "dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                   "map_index": map_index, "key": key}
        provider, key_name = _provider()
        sealed = io.BytesIO()
        with provider:
            encrypt_stream(io.BytesIO(payload), sealed, provider, key_name=key_name, context=binding)
        blob = sealed.getvalue()
        threshold = conf.getint(SECTION, "xcom_objectstorage_threshold", fallback=-1)
        base = conf.get(SECTION, "xcom_objectstorage_path", fallback="")
        if base and 0 <= threshold <= len(blob):
            path = ObjectStoragePath(base).joinpath(dag_id or "NO_DAG_ID", run_id or "NO_RUN_ID",
                                                    task_id or "NO_TASK_ID", f"{uuid.uuid4()}.pse")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(blob)
            return BaseXCom.serialize_value({MARKER: 1, "path": str(path)})
        return BaseXCom.serialize_value({MARKER: 1, "envelope": base64.b64encode(blob).decode("ascii")})

    @staticmethod
    def deserialize_value(result: Any) -> Any:
        stored = BaseXCom.deserialize_value(result)
        if not (isinstance(stored, dict) and stored.get(MARKER) == 1):
            return stored  # written before the backend was enabled
        if "path" in stored:
            with ObjectStoragePath(stored["path"]).open("rb") as handle:
                blob = handle.read()
        else:
            blob = base64.b64decode(stored["envelope"])
        binding = json.loads(read_header(io.BytesIO(blob)).context)
        _check_reader(binding, getattr(result, "key", None))
        provider, _ = _provider()
        plain = io.BytesIO()
        with provider:
            decrypt_stream(io.BytesIO(blob), plain, provider, context=binding)
        from airflow.sdk.serde import deserialize

        return deserialize(json.loads(plain.getvalue()))

    @staticmethod
    def purge(xcom: Any, *args: Any) -> None:
        stored = xcom.value if isinstance(getattr(xcom, "value", None), dict) else None
        if stored and stored.get(MARKER) == 1 and "path" in stored:
            ObjectStoragePath(stored["path"]).unlink(missing_ok=True)


def _check_reader(binding: dict[str, Any], key: str | None) -> None:
    reader_dag = _reader_dag_id()
    if binding.get("pipeshield") != "xcom":
        raise ContextMismatchError("the stored envelope is not a pipeshield XCom value")
    if reader_dag is not None and binding.get("dag_id") != reader_dag:
        raise ContextMismatchError(
            f"the encrypted XCom value belongs to DAG {binding.get('dag_id')!r}, not to {reader_dag!r}"
        )
    if key is not None and binding.get("key") != key:
        raise ContextMismatchError(f"the encrypted XCom value was stored under key {binding.get('key')!r}, not {key!r}")
