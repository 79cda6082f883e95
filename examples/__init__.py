"""The example shop: five services, each a module with a pigeon ``Router`` and an App serving it.

``quickstart`` runs them together in one process; ``docker-compose.yml`` runs one per container;
``shop`` includes the four back-office routers in one App. Start reading at ``orders``, which
drives the story.
"""
