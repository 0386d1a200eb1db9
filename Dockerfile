# One image for every streamrec role; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY online_model ./online_model
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --create-home streamrec
USER streamrec
ENV STREAMREC_STATE_DIR=/home/streamrec/state
ENTRYPOINT ["streamrec"]
