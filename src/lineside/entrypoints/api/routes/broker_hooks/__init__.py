"""Production MQTT brokers ask Lineside who may connect and to which topics, and tell it who
connected and left, through HTTP hooks in each broker's own contract::

    /broker/emqx/authenticate | authorize | events        EMQX 5 (authn, authz, webhook)
    /broker/mosquitto/user | superuser | acl              mosquitto-go-auth HTTP backend
    /broker/mosquitto/tick | provision                   Lineside's own Mosquitto plugin
    /broker/vernemq[/<hook>]                              VerneMQ webhooks
    /broker/rabbitmq/user | vhost | resource | topic      RabbitMQ HTTP auth backend

Every decision comes from ``services.mqtt_access``, the same authority as the embedded
broker's; connections and disconnections go to a presence recorder that the app's lifespan
flushes (``presence``). Configuration for each broker: docs/brokers.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from lineside.entrypoints.api.routes.broker_hooks import emqx, mosquitto, mosquitto_plugin, rabbitmq, vernemq
from lineside.entrypoints.api.routes.broker_hooks.presence import flushing_presence

# Each broker's router carries its whole prefix (/broker/emqx, ...): a prefix given when
# including a router is not part of its routes' own paths, which the metrics label
# requests by and the query-parameter check exempts broker hooks by.
router = APIRouter(tags=["brokers"], lifespan=flushing_presence)
for _broker in (emqx, mosquitto, mosquitto_plugin, vernemq, rabbitmq):
    router.include_router(_broker.router)
