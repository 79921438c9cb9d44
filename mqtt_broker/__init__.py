"""The world's MQTT broker process: Mosquitto when it is installed, else amqtt, on loopback,
with the world's users and no anonymous access (docs/iot.md, "Credentials")."""
