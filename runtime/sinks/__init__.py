"""Where embeddings go: callbacks, rotating files, Lab Streaming Layer, MQTT."""
