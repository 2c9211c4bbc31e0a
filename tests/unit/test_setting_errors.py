"""Every typed setting, given a wrong value, is refused with one line that names its
variable and shows the value (the CLI prints it and exits 78; tests/integration/
test_cli_errors.py runs a few through the real command)."""

from __future__ import annotations

import typing

import pytest

from lineside.entrypoints.cli.common import ConfigurationError, load_settings
from lineside.settings import Settings

WRONG_BY_TYPE = {int: "twelve", float: "soon", bool: "maybe"}


def wrong_value(annotation: object) -> str | None:
    """A value no setting of this type accepts, or None for free text."""
    if typing.get_origin(annotation) is typing.Literal:
        return "nonsense"
    kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)] or [annotation]
    return next((WRONG_BY_TYPE[kind] for kind in kinds if kind in WRONG_BY_TYPE), None)


TYPED = {
    f"LINESIDE_{name.upper()}": value
    for name, field in Settings.model_fields.items()
    if (value := wrong_value(field.annotation)) is not None
}


def test_most_settings_are_typed_and_so_checked() -> None:
    assert len(TYPED) >= 25


@pytest.mark.parametrize(("variable", "value"), TYPED.items(), ids=TYPED.keys())
def test_a_wrong_value_is_one_line_naming_the_setting_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    line = refused.value.message
    assert "\n" not in line
    assert line.startswith(f"{variable}: ")
    assert repr(value) in line
    assert refused.value.exit_code == 78
