# syntax=docker/dockerfile:1
#
# One image for every PixelMesh process: `pixelmesh operator`, `pixelmesh worker`, `pixelmesh gateway`.
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t pixelmesh .
#
# The builder stage turns the sources into a wheel and installs it, with the pinned runtime closure
# from requirements.lock, into a virtualenv at /opt/pixelmesh. The base image's pip installs into
# it (`--python`), so the virtualenv holds no pip of its own. The final stage copies only that
# virtualenv onto the same slim Python base: no compiler, no pip cache, no sources.
# libvips comes from the pyvips-binary wheel, not from the distribution. pyvips itself is an sdist
# and is built into a wheel here; its C part ships prebuilt in pyvips-binary, so no compiler is
# needed, and any future dependency that does need one fails this stage rather than the runtime.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The dependency layer depends only on the lock, so source edits reuse it.
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/pixelmesh \
    && python -m pip --python /opt/pixelmesh/bin/python install --no-deps --requirement requirements.lock

COPY pyproject.toml README.md ./
COPY pixelmesh/ pixelmesh/
COPY operator/ operator/
COPY worker/ worker/
COPY gateway/ gateway/
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m pip --python /opt/pixelmesh/bin/python install --no-deps /dist/pixelmesh-*.whl \
    && python -m pip --python /opt/pixelmesh/bin/python check

FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="pixelmesh" \
      org.opencontainers.image.description="PixelMesh: libvips image pipelines on Kubernetes, fed by NATS JetStream (operator, worker and gateway)." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/pixelmesh/pixelmesh" \
      org.opencontainers.image.documentation="https://github.com/pixelmesh/pixelmesh/blob/main/docs/helm.md" \
      org.opencontainers.image.vendor="The PixelMesh authors" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 pixelmesh \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pixelmesh

COPY --from=builder /opt/pixelmesh /opt/pixelmesh

# Bytecode was compiled at install time; the root filesystem is read-only in the cluster.
# Two malloc arenas: libvips' threads otherwise keep one each; same speed, a third less memory
# (docs/benchmarks.md).
ENV PATH=/opt/pixelmesh/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2

USER 10001:10001
WORKDIR /tmp

ENTRYPOINT ["pixelmesh"]
CMD ["--help"]
