"""The transports: the seam (``base``), one package per broker, and what they share.

``base`` holds the protocols the patterns use; ``registry`` picks a transport by URL scheme;
``urls``, ``replies`` and ``runner`` are helpers every broker package uses. Each broker package
(``memory``, ``nats``, ``rabbitmq``) names its modules for their role: ``events``, ``requests``,
``jobs``, ``dead_letters``, ``topology``, ``wire``, ``errors``, with the transport class in
``transport`` as a thin composition of them.
"""
