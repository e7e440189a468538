# sidebyside on Debian with Python 3.11. bubblewrap inside the container needs
# namespaces: run with --security-opt seccomp=unconfined --cap-add SYS_ADMIN.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends make bubblewrap libseccomp2 graphviz \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/sidebyside
COPY pyproject.toml Makefile README.md ./
COPY app app
COPY sandbox sandbox
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir .
COPY lessons lessons
COPY templates templates
COPY static static

ENV SIDEBYSIDE_HOST=0.0.0.0 \
    SIDEBYSIDE_DATA_DIR=/var/lib/sidebyside \
    SIDEBYSIDE_PACKS_DIR=/srv/sidebyside/lessons
EXPOSE 8000
CMD [".venv/bin/sidebyside", "serve"]
