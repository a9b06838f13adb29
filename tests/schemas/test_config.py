"""Configuration: TOML file, BREEDWATCH_* variables, clear errors."""

from __future__ import annotations

import pytest

from schemas.config import ConfigError, Settings, load_settings


def test_defaults_need_no_file(monkeypatch, tmp_path):
    monkeypatch.delenv("BREEDWATCH_HOME", raising=False)
    settings = load_settings()
    assert settings.schedule.cron == "0 2 * * *"
    assert settings.inbox_dir == settings.home / "inbox"


def test_toml_then_environment_then_arguments(monkeypatch, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        'default_timezone = "Asia/Shanghai"\n[ingest]\nshort_audio_s = 3.5\n[schedule]\ntimezone = "Europe/Madrid"\n'
    )
    monkeypatch.setenv("BREEDWATCH_INGEST__SHORT_AUDIO_S", "4.5")
    settings = load_settings(config, home=tmp_path / "h")
    assert settings.default_timezone == "Asia/Shanghai"
    assert settings.schedule.timezone == "Europe/Madrid"
    assert settings.ingest.short_audio_s == 4.5  # the environment beats the file
    assert settings.home == tmp_path / "h"  # an explicit argument beats both


def test_home_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BREEDWATCH_HOME", str(tmp_path / "station"))
    assert load_settings().home == tmp_path / "station"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[schedule]\ntimezone = "Mars/Olympus"\n', "schedule.timezone"),
        ('[schedule]\ncron = "at two"\n', "schedule.cron"),
        ("[ingest]\nmax_image_pixels = -1\n", "ingest.max_image_pixels"),
        ("unknown_setting = 1\n", "unknown_setting"),
        ('[gender.train]\ninit = "identity"\n', "gender.train.init"),
        ("[identity]\nreview_margin = -0.1\n", "identity.review_margin"),
        ('[identity.train]\nloss = "softmax"\n', "identity.train.loss"),
    ],
)
def test_invalid_settings_name_the_setting_and_file(tmp_path, text, expected):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert expected in str(error.value)
    assert str(config) in str(error.value)


def test_malformed_toml_and_missing_file_are_clear(tmp_path):
    config = tmp_path / "broken.toml"
    config.write_text("[ingest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_fingerprint_ignores_paths_but_not_results(tmp_path):
    base = Settings(home=tmp_path / "a")
    assert base.fingerprint() == Settings(home=tmp_path / "b").fingerprint()
    changed = Settings(home=tmp_path / "a", ingest={"max_image_pixels": 10})
    assert changed.fingerprint() != base.fingerprint()
