# The pipeline's software in one image: Python 3.11 and exactly the pins of requirements.txt,
# installed as the Makefile installs them, for machines without internet (README: Containers).
#   docker build -t hcmoco:0.1.0 .
#   docker run --rm -v "$PWD":/work -w /work hcmoco:0.1.0 snakemake --workflow-profile workflow/profiles/local
# torch comes from plain pip like the Makefile's, the same build the results were made with: it
# computes on a CPU and uses a GPU where the container is given one (docker --gpus, apptainer --nv).
FROM python:3.11-slim-bookworm

# git: DVC and the run logs (the revision that computed each output); make: the Makefile's targets
# (tools, not numbers: Debian's security updates replace them, so their versions are not pinned)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /opt/hcmoco

# the pinned environment first, so a change of code reuses this layer
COPY requirements.txt ./
RUN python -m venv /opt/venv \
    && pip install -r requirements.txt

# the package, then what `make reproduce` and `make test` read
COPY pyproject.toml README.md ./
COPY hcmoco/ hcmoco/
RUN pip install --no-deps -e . \
    && touch /opt/venv/.installed
COPY Makefile Snakefile dvc.yaml ./
COPY params/ params/
COPY workflow/ workflow/
COPY docs/ docs/
COPY tests/ tests/

CMD ["make", "reproduce"]
