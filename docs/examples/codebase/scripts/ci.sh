#!/bin/sh
# the CI job: the API's tests against a database
set -e
docker run -d --name db -e POSTGRES_PASSWORD=test postgres:16
docker run --rm --network container:db \
  -v "$PWD/api:/app" -w /app node:20 npm test
docker run --rm "$LINT_IMAGE" .   # set by the CI: not resolved
