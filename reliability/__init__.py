"""pigeon's reliability suite: what pigeon survives on NATS (JetStream) and RabbitMQ (quorum
queues), shown with figures.

Each scenario in ``reliability.scenarios`` is an async function that runs one experiment against
a ``Target`` (a broker; ``reliability.targets``) with the ``pigeon run`` services of
``reliability.services``, and returns a ``Result``: sent, processed, lost, duplicated,
dead-lettered, peak RSS, seconds, and the guarantees it saw broken (``problems``).
``tests/reliability`` runs each in a short form; ``python -m reliability`` (``make soak``) runs
them all at full size and prints a table per scenario. ``docs/reliability.md`` tells the story.
"""
