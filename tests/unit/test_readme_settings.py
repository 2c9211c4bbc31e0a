"""The README's configuration table is the Settings class's own: every setting, its default
and its meaning, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from lineside.settings import Settings

README = Path(__file__).parents[2] / "README.md"
START = "| variable | default | meaning |"
END = "<!-- end of settings table -->"


def test_the_readme_lists_every_setting_as_the_settings_class_describes_it() -> None:
    text = README.read_text()
    table = text[text.index(START) : text.index(END)].strip()
    assert table == Settings.documentation_table(), "run: python -m lineside.settings, paste into README.md"


def test_every_setting_says_what_it_is_for() -> None:
    assert all(field.description for field in Settings.model_fields.values())
