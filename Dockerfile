# syntax=docker/dockerfile:1
# Two images, one per role (compose.yaml runs both, with Redis):
#   docker build --target web -t sidebyside-web .        the site; CPU builds; runs snippets
#                                                        itself unless SIDEBYSIDE_BROKER_URL is set
#   docker build --target worker -t sidebyside-worker .  sidebyside worker on a GPU host; CUDA builds
# Each installs its lock file with hashes checked (requirements/web.txt, gpu.txt; make lock),
# then the project alone, as make install does. Both run as an ordinary user: the
# sandbox's rootless mode, which needs unprivileged user namespaces on the host and
#   --security-opt seccomp=unconfined --security-opt apparmor=unconfined
#   --security-opt systempaths=unconfined
# and no added capability (README, "Deploy", says why each).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The CUDA libraries themselves come with the locked wheels (nvidia-*); the base
# brings the NVIDIA container runtime's hook-up and a CUDA 13 driver requirement,
# which torch 2.13.0's default (CUDA 13) build needs.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04
# The worker's system and packages: the CUDA base and the GPU lock. A machine with no
# GPU builds a CPU worker on the web's system and packages instead (make image-check
# does): --build-arg WORKER_PACKAGES=cpu-packages
ARG WORKER_PACKAGES=gpu-packages
# Where pip finds torch's CPU build, which is not on PyPI (its hash is in the lock
# either way): the PyTorch CPU index, or a folder of wheels mounted for the build
# (buildah bud --volume DIR:/wheels:ro --build-arg TORCH_CPU_WHEELS=/wheels).
ARG TORCH_CPU_WHEELS=https://download.pytorch.org/whl/cpu/torch/

# What the wheel is built from: one list for both images.
FROM scratch AS source
COPY pyproject.toml setup.py /src/
COPY app /src/app
COPY sandbox /src/sandbox
COPY templates /src/templates
COPY static /src/static
COPY lessons /src/lessons

# The web's system and packages, and a CPU worker's: Debian with the official
# Python build, the CPU lock.
FROM ${PYTHON_IMAGE} AS cpu-packages
# bubblewrap and libseccomp: the sandbox; graphviz: graphs drawn for runs. Not
# pinned (DL3008): the archive drops superseded versions, so a pin breaks the
# build within weeks; the base image's tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap libseccomp2 graphviz \
    && rm -rf /var/lib/apt/lists/*
ARG TORCH_CPU_WHEELS
ENV VIRTUAL_ENV=/opt/sidebyside PATH=/opt/sidebyside/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/web.txt /tmp/requirements.txt
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --require-hashes --find-links "$TORCH_CPU_WHEELS" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# A GPU worker's system and packages: the CUDA base, Python 3.11 (not in Ubuntu
# 24.04's archive: the deadsnakes builds), the GPU lock.
FROM ${CUDA_IMAGE} AS gpu-packages
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
       bubblewrap libseccomp2 graphviz \
    && apt-get purge -y --auto-remove software-properties-common gpg-agent \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/sidebyside PATH=/opt/sidebyside/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/gpu.txt /tmp/requirements.txt
RUN python3.11 -m venv "$VIRTUAL_ENV" \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

FROM cpu-packages AS web
# buildah (1.28, --layers) reuses a cached RUN whose --mount=from stage has changed;
# BuildKit doesn't. A build with buildah passes the sources' digest (make image-check
# does), so that the project is installed again whenever they change.
ARG SOURCE_DIGEST=
RUN --mount=from=source,source=/src,target=/src,rw \
    pip install --no-deps --no-build-isolation /src
RUN groupadd --system --gid 10001 sidebyside \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sidebyside --create-home \
       sidebyside
USER 10001:10001
WORKDIR /var/lib/sidebyside
ENV SIDEBYSIDE_HOST=0.0.0.0 SIDEBYSIDE_PORT=8000 SIDEBYSIDE_DATA_DIR=/var/lib/sidebyside
VOLUME /var/lib/sidebyside
EXPOSE 8000
# Healthy while /api/health says "ok": the pool's template is alive, or with a
# broker, at least one worker beats.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import json, os, sys, urllib.request; url = f\"http://127.0.0.1:{os.environ.get('SIDEBYSIDE_PORT', '8000')}/api/health\"; sys.exit(json.load(urllib.request.urlopen(url, timeout=8))['status'] != 'ok')"]
CMD ["sidebyside", "serve"]

FROM ${WORKER_PACKAGES} AS worker
# No dependencies from the package: it names tensorflow-cpu, which the GPU lock
# replaces with tensorflow[and-cuda] (both install the same module). No cache
# (DL3042): PIP_NO_CACHE_DIR comes with either packages stage.
ARG SOURCE_DIGEST=
# hadolint ignore=DL3042
RUN --mount=from=source,source=/src,target=/src,rw \
    pip install --no-deps --no-build-isolation /src
RUN groupadd --system --gid 10001 sidebyside \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sidebyside --create-home \
       sidebyside
USER 10001:10001
WORKDIR /var/lib/sidebyside
# Healthy while this worker's heartbeat is in Redis (it beats every 2 s, kept 6 s).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, socket, sys, redis; from sandbox.remote.celeryapp import BEAT_PREFIX; r = redis.Redis.from_url(os.environ['SIDEBYSIDE_BROKER_URL']); sys.exit(not any(r.scan_iter(f'{BEAT_PREFIX}*:*@{socket.gethostname()}')))"]
CMD ["sidebyside", "worker"]
