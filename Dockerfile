# One image for every part of the platform; docker-compose picks the nameko
# module each container runs (the same commands as the local runner).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
COPY plumbing ./plumbing
COPY services ./services
COPY gateway ./gateway
RUN pip install .

COPY . .
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cpd \
    && mkdir -p /app/data /var/lib/cpd-audit /var/lib/cpd-evidence \
    && chown cpd /app/data /var/lib/cpd-audit /var/lib/cpd-evidence
USER cpd

EXPOSE 8000
CMD ["nameko", "run", "--config", "config.yml", "gateway.service:GatewayService"]
