"""``amqp://``: RabbitMQ through aio-pika; see ``transport``."""

from pigeon.transports.rabbitmq.transport import RabbitMQTransport

__all__ = ["RabbitMQTransport"]
