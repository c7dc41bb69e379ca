"""``VerifyModelInputsOperator``: verify the model directories a deploy task receives through XCom (the task the
verify policy inserts in front of an unmodified deploy task), and ``RecheckVerifiedInputs``, the deploy task's
pre-execute hook that verifies them again in the deploy task's own process, right before it runs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from pipeshield.errors import BindingMismatchError, PipeshieldError
from pipeshield.hooks.keys import KeyProviderHook
from pipeshield.operators._storage import local_path
from pipeshield.registry import trusted_keys
from pipeshield.signing import SignedContents, TrustedKeys, verify_or_raise

MLFLOW_DOWNLOAD_META = "registered_model_meta"
"""Written by MLflow's client into a ``models:/<name>/<version>`` download; not part of the stored model."""


class VerifyModelInputsOperator(BaseOperator):
    """Pull each ``(task_id, key)`` XCom of ``inputs``; each must name a local model directory (a path or
    ``file://`` URI) whose pipeshield signature verifies with the trusted keys (``PIPESHIELD_TRUSTED_KEYS_DIR``
    or the deploy stage's key provider of ``vault_conn_id``). Otherwise the task fails without retries,
    naming the input and the file or binding at fault. The ``registered_model_meta`` file MLflow's client
    adds to a ``models:/`` download is accepted when it names the signed model name and version. Returns
    (XCom) one item per input: ``task_id``, ``path``, ``name``, ``version``, ``root_digest``, ``key_version``.
    """

    ui_color = "#a3d9a5"

    def __init__(self, *, inputs: Sequence[Sequence[str]], key_name: str | None = None,
                 vault_conn_id: str = KeyProviderHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inputs = [(str(task_id), str(key)) for task_id, key in inputs]
        self.key_name, self.vault_conn_id = key_name, vault_conn_id
        self.params["pipeshield_stage"] = "deploy"  # routed (stage policy) and traced as the deploy stage

    def execute(self, context: Context) -> list[dict[str, Any]]:
        return self.verify_inputs(context)

    def verify_inputs(self, context: Context, refused: str = "model refused before deploy") -> list[dict[str, Any]]:
        """Verify every input as it is now; one item per input (see the class docstring). Failures raise
        ``AirflowFailException`` with a message starting with ``refused``."""
        settings = KeyProviderHook(self.vault_conn_id, stage="deploy").get_settings()
        ti = context["ti"]
        try:
            keys = trusted_keys(settings, key_name=self.key_name)
            verified = [self._verify(task_id, ti.xcom_pull(task_ids=task_id, key=key), keys, refused)
                        for task_id, key in self.inputs]
        except PipeshieldError as exc:
            raise AirflowFailException(f"{refused}: {exc}") from exc
        return verified

    def _verify(self, task_id: str, value: Any, keys: TrustedKeys, refused: str) -> dict[str, Any]:
        path = local_path(value) if isinstance(value, str) and value else None
        if path is None or not path.is_dir():
            what = repr(str(path)) if path is not None else f"a {type(value).__name__}"  # never echo other values
            raise AirflowFailException(f"{refused}: the output of {task_id!r} ({what}) is not a "
                                       "local model directory pipeshield can verify")
        try:
            contents = _verify_download(path, keys)
        except PipeshieldError as exc:
            raise AirflowFailException(f"{refused}: {task_id!r} handed over {path}: {exc}") from exc
        bindings = contents.bindings
        self.log.info("verified the model %s handed over: %r v%s (root digest %s, key %s v%d)", path,
                      bindings.name, bindings.version, contents.root_digest, contents.key_name, contents.key_version)
        return {"task_id": task_id, "path": str(Path(path)), "name": bindings.name, "version": bindings.version,
                "root_digest": contents.root_digest, "key_version": contents.key_version}


class RecheckVerifiedInputs:
    """Pre-execute hook of a deploy task guarded by ``verify_task_id``: verify its inputs again, in the deploy
    task's own process and after any hook it already had, and require the root digests the verify task recorded.

    This closes the gap between the two tasks (another worker, minutes apart) in which a process able to write
    the model directory could swap files or hand over another validly signed model; what remains is the time
    the deploy task itself takes to read them. It costs one more hash of the model.
    """

    def __init__(self, verify_task_id: str, previous: Callable[[Context], Any] | None = None) -> None:
        self.verify_task_id, self.previous = verify_task_id, previous

    @classmethod
    def attach(cls, task: BaseOperator, verify_task_id: str) -> None:
        """Make the re-check the last pre-execute step of ``task``; attaching twice changes nothing."""
        if not isinstance(task._pre_execute_hook, cls):
            task._pre_execute_hook = cls(verify_task_id, task._pre_execute_hook)

    def __call__(self, context: Context) -> None:
        if self.previous is not None:
            self.previous(context)
        refused = f"model refused at deploy (verified again after {self.verify_task_id!r})"
        verify = context["task"].dag.get_task(self.verify_task_id)
        recorded = context["ti"].xcom_pull(task_ids=self.verify_task_id)
        if not isinstance(verify, VerifyModelInputsOperator) or not isinstance(recorded, list) \
                or len(recorded) != len(verify.inputs):
            raise AirflowFailException(f"{refused}: {self.verify_task_id!r} left no verification record")
        for before, after in zip(recorded, verify.verify_inputs(context, refused)):
            verified = before.get("root_digest") if isinstance(before, dict) else None
            if verified != after["root_digest"]:
                raise AirflowFailException(
                    f"{refused}: {after['task_id']!r} handed over {after['path']}, a validly signed model but not "
                    f"the one verified (root digest {after['root_digest']}, verified {verified})")


def _verify_download(path: Path, keys: TrustedKeys) -> SignedContents:
    """Verify ``path``; a download's MLflow meta file is checked against the signed bindings, not hashed."""
    meta_file = path / MLFLOW_DOWNLOAD_META
    if not meta_file.is_file():
        return verify_or_raise(path, keys)
    with tempfile.TemporaryDirectory(prefix="pipeshield-verify-") as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(path, copy, symlinks=True,
                        ignore=lambda folder, names: [MLFLOW_DOWNLOAD_META] if Path(folder) == path else [])
        contents = verify_or_raise(copy, keys)
    try:
        meta = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        meta = None
    signed = {"model_name": contents.bindings.name, "model_version": str(contents.bindings.version)}
    if not isinstance(meta, dict) or {k: str(v) for k, v in meta.items()} != signed:
        raise BindingMismatchError(f"{MLFLOW_DOWNLOAD_META} does not name the signed model "
                                   f"{signed['model_name']!r} v{signed['model_version']}", MLFLOW_DOWNLOAD_META)
    return contents
