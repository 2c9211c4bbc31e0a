"""The embedded MQTT broker (amqtt) and its TLS listener."""
