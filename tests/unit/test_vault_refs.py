"""Secret references resolve from the environment and files; failures say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.adapters import vault
from controlplane.core.errors import SecretError
from controlplane.core.manifest import SecretRef


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_TEST_SECRET", "from-env")
    assert vault.resolve(SecretRef(env="CDC_TEST_SECRET")) == "from-env"


def test_env_missing_has_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDC_TEST_SECRET", raising=False)
    with pytest.raises(SecretError, match="CDC_TEST_SECRET") as exc:
        vault.resolve(SecretRef(env="CDC_TEST_SECRET"))
    assert exc.value.hint
    assert "export CDC_TEST_SECRET" in exc.value.hint


def test_file_key_relative_to_manifest(tmp_path: Path) -> None:
    (tmp_path / "pg.properties").write_text("user=cdc\npassword=from-file\n")
    ref = SecretRef(file="pg.properties", key="password")
    assert vault.resolve(ref, base_dir=tmp_path) == "from-file"


def test_file_missing_key(tmp_path: Path) -> None:
    (tmp_path / "pg.properties").write_text("user=cdc\n")
    with pytest.raises(SecretError, match="no key 'password'"):
        vault.resolve(SecretRef(file=str(tmp_path / "pg.properties"), key="password"))


def test_unreachable_vault_is_a_secret_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("VAULT_TOKEN", "t")
    with pytest.raises(SecretError, match=r"cannot reach Vault at http://127\.0\.0\.1:9 to read"):
        vault.resolve(
            SecretRef.model_validate({"vault": {"path": "secret/cdc", "key": "password"}})
        )
