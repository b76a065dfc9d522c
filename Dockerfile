# mirror as a container, for scheduled CI jobs (CodeBuild, GitHub Actions, cron):
#   docker build -t mirror .
#   docker run --rm -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#     -e DOCKERHUB_USERNAME -e DOCKERHUB_TOKEN -v "$PWD/config:/work/config:ro" mirror sync
# The base image is itself worth mirroring: pass --build-arg BASE=<ecr>/dockerhub/library/python:3.12-slim
ARG BASE=python:3.12-slim
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mirror ./mirror
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${BASE}
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 mirror
USER mirror
WORKDIR /work
ENTRYPOINT ["mirror"]
CMD ["--help"]
