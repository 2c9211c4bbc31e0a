"""Lineside's broker subclasses amqtt and overrides some of its private methods. amqtt may
change those in any release, so: the version is pinned to the tested range, and every
override must still match a method amqtt has, with the same parameters. A new amqtt that
renames or reshapes one fails here, by name, instead of in a broker that quietly stops
calling our code."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import requires, version

import pytest
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from packaging.requirements import Requirement

from lineside.adapters.mqtt.broker import AmqttBroker, _Handler
from lineside.adapters.mqtt.session_states import LeanSession

# What we override on purpose, per class: a method added to or dropped from this list is a
# decision about amqtt's internals, to be made here.
OVERRIDES = {
    (AmqttBroker, Broker): {
        "__init__",
        "_create_server_instance",
        "_initialize_client_session",
        "_authenticate",
        "_handle_client_session",
        "_topic_filtering",
        "_publish_retained_messages_for_subscription",
        "_broadcast_message",
        "stream_connected",
        "retain_message",
    },
    (_Handler, BrokerProtocolHandler): {"handle_read_timeout"},
    (LeanSession, Session): {"_init_states"},
}


def _shape(function: Callable[..., object]) -> list[tuple[str, inspect._ParameterKind]]:
    """Each parameter's name and kind; an unused one ("_", "_listener") is just unused."""
    parameters = inspect.signature(function).parameters.values()
    return [("_" if p.name.startswith("_") else p.name, p.kind) for p in parameters]


def test_the_installed_amqtt_is_in_the_pinned_range() -> None:
    pinned = next(Requirement(r) for r in requires("lineside") or [] if Requirement(r).name == "amqtt")
    assert version("amqtt") in pinned.specifier, f"amqtt {version('amqtt')} is outside {pinned.specifier}"
    assert list(pinned.specifier.filter(["0.13.0"])) == [], "the pin must stop before amqtt's next minor"


@pytest.mark.parametrize(("ours", "theirs"), list(OVERRIDES), ids=lambda c: c.__name__)
def test_we_override_exactly_the_methods_we_mean_to(ours: type, theirs: type) -> None:
    overridden = {name for name in vars(ours) if callable(vars(ours)[name]) and hasattr(theirs, name)}
    assert overridden == OVERRIDES[(ours, theirs)]


@pytest.mark.parametrize(
    ("ours", "theirs", "name"),
    [
        (ours, theirs, name)
        for (ours, theirs), names in OVERRIDES.items()
        for name in sorted(names)
        if name != "__init__"
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_each_override_has_the_parameters_amqtt_calls_it_with(ours: type, theirs: type, name: str) -> None:
    assert _shape(getattr(ours, name)) == _shape(getattr(theirs, name)), (
        f"amqtt's {theirs.__name__}.{name} changed shape: review our override before upgrading"
    )
    assert inspect.iscoroutinefunction(getattr(ours, name)) == inspect.iscoroutinefunction(
        getattr(theirs, name)
    )
