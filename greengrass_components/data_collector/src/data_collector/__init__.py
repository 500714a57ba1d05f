"""DataCollector: reads a line's machines (OPC UA, Modbus TCP, plant MQTT) and publishes the
product's contracts through a durable spool."""
