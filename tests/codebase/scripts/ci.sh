#!/usr/bin/env bash
# CI steps: the docker commands that pull an image, and some that do not
set -euo pipefail

docker pull python:3.12
docker run --rm -e CI=1 --name unit -v "$PWD:/src" -w /src node:20 npm test
sudo docker image pull --platform linux/arm64 "redis:7.2"
docker container run \
  --network host --entrypoint sh -u 1000 \
  busybox:1.36 -c 'echo ok'
CID=$(docker create alpine:3.19) && docker cp "$CID:/etc/os-release" .
docker run --rm -it "$IMAGE" true
docker pull ${REGISTRY}/team/tool:1
docker build --build-arg BASE=python:3.11 -t app .   # builds: no image pulled
docker buildx build -t app .
docker compose up -d
# docker pull commented:1
echo "docker pull quoted:1"
cat <<EOF
docker pull heredoc:1
EOF
docker pull ghcr.io/astral-sh/uv:0.4
