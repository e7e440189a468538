"""Every setting is documented in the README's settings table."""

from __future__ import annotations

from app.settings import ROOT, Settings


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `SIDEBYSIDE_")]
    documented = {line.split("`")[1] for line in table}
    expected = {f"SIDEBYSIDE_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README"
    assert documented - expected == set(), "README documents settings that don't exist"


def test_settings_read_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SIDEBYSIDE_RUN_TIMEOUT_S", "3.5")
    monkeypatch.setenv("SIDEBYSIDE_DATA_DIR", "/tmp/elsewhere")
    settings = Settings()
    assert settings.run_timeout_s == 3.5 and str(settings.data_dir) == "/tmp/elsewhere"
    assert settings.limits().wall_s == 3.5
