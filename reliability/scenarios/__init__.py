"""The scenarios: one module each, an async function returning a ``Result``."""
