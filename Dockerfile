# mirror as a container, for scheduled jobs (CodeBuild, GitHub Actions, cron); docs/container.md
#   docker build -t mirror .
#   docker run --rm -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#     -e DOCKERHUB_USERNAME -e DOCKERHUB_TOKEN -v "$PWD/config:/work/config:ro" mirror sync
# BASE: any image with python3 (3.11 or later) and pip, e.g. its own mirror in ECR:
#   --build-arg BASE=<account>.dkr.ecr.<region>.amazonaws.com/dockerhub/library/python:3.12-slim
# An offline build installs from wheels put in the context (wheels/, see docs/container.md):
#   --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/wheels
ARG BASE=python:3.12-slim

# build: a virtualenv of mirror and its dependencies, without pip in it
FROM ${BASE} AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY . /src
RUN python3 -m venv --without-pip /opt/mirror \
    && python3 -m pip --python /opt/mirror/bin/python install \
       --no-cache-dir --disable-pip-version-check --no-warn-script-location /src

# final: the base and the virtualenv only (no wheels, no build tools, no pip caches);
# the virtualenv comes last, so that the steps before it copy only the base
FROM ${BASE}
ENV PATH="/opt/mirror/bin:${PATH}" \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["mirror"]
CMD ["--help"]
COPY --from=build /opt/mirror /opt/mirror
