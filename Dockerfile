# The toolkit's daemons for docker-compose.yml: `outbox relay run`, `outbox migrate upgrade`, ...
# Installed as a user installs it: a wheel is built from exactly what pyproject.toml's wheel target
# names (tests/test_compose.py checks that each of them is copied), and the image holds only the
# installed wheel, no source tree (the same install that tests/test_wheel.py runs `outbox demo` from).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY outbox outbox
COPY relay relay
COPY projectors projectors
COPY outboxkit outboxkit
COPY migrations migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
WORKDIR /app
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist
ENTRYPOINT ["outbox"]
