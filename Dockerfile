# One image for every example service; docker-compose.yml runs one module of examples/ per container.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pigeon first, so that editing an example does not reinstall it.
COPY pyproject.toml README.md ./
COPY pigeon ./pigeon
RUN pip install . && useradd --create-home --uid 10001 pigeon

COPY examples ./examples

USER pigeon
CMD ["python", "-m", "examples.quickstart"]
