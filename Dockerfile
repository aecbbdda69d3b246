# The toolkit's daemons for docker-compose.yml: `outbox relay run`, `outbox migrate upgrade`, ...
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY outbox outbox
COPY relay relay
COPY projectors projectors
COPY outboxkit outboxkit
COPY migrations migrations
RUN pip install --no-cache-dir .
ENTRYPOINT ["outbox"]
