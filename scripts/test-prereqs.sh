#!/usr/bin/env bash
# What the test suite needs besides the Python packages: a running RabbitMQ
# with its management API (nameko's pytest plugin makes a vhost per test
# through it), a running PostgreSQL, and docker-compose to check the compose
# file. Each step does nothing when its part is already there.
set -euo pipefail

if ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "RabbitMQ is not listening on 127.0.0.1:5672; starting it"
  rabbitmq-server -detached
  for _ in $(seq 60); do (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
fi

if ! (echo > /dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 60); do (echo > /dev/tcp/127.0.0.1/15672) 2>/dev/null && break; sleep 1; done
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL is not ready on 127.0.0.1:5432; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

if ! command -v docker-compose >/dev/null; then
  echo "installing docker-compose (to check docker-compose.yml)"
  apt-get update -qq >/dev/null && apt-get install -y -qq docker-compose >/dev/null
fi
