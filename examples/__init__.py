"""The example shop: five services, each a pigeon App in its own module.

``quickstart`` runs them together in one process; ``docker-compose.yml`` runs one per container.
Start reading at ``orders``, which drives the story.
"""
