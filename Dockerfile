# One image for every streamrec role; docker-compose.yml picks the command. It talks to
# Apache Kafka and Redis, so the embedded servers (extra `embedded`) are left out.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY online_model ./online_model
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --create-home streamrec
USER streamrec
# In a container loopback is unreachable from outside, so the scorer listens on every
# interface, and therefore refuses to start without STREAMREC_API_TOKENS.
ENV STREAMREC_STATE_DIR=/home/streamrec/state \
    STREAMREC_WEB_PORT=6066 \
    STREAMREC_WEB_BIND=0.0.0.0
# The scorer's liveness; roles without a web port (trainer, producer) disable it in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['STREAMREC_WEB_PORT'] + '/healthz', timeout=2)"
ENTRYPOINT ["streamrec"]
