# The stemscribe image of docker-compose.yml: API node (`stemscribe serve`) or worker (`stemscribe worker`).
# Bookworm, not the tag's moving default: the Debian release scripts/check_docker.sh builds and runs it on.
FROM python:3.11-slim-bookworm
# libcairo2: CairoSVG's PDF of the sheet music (the score extra), fonts-dejavu-core its text and the
# sharps and flats of chord symbols (stemscribe.score.engrave); the audio decoders bring their own libraries
RUN apt-get update && apt-get install -y --no-install-recommends libcairo2 fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stemscribe ./stemscribe
# basic-pitch's network ships in stemscribe/weights (pitch.onnx), so its wheel is not installed here
RUN pip install --no-cache-dir '.[scale,score]'
# not root: Celery warns against a root worker, and neither process needs it
RUN useradd --system --create-home --home-dir /var/lib/stemscribe stemscribe
USER stemscribe
ENV STEMSCRIBE_DATA_DIR=/var/lib/stemscribe
EXPOSE 8000
CMD ["stemscribe", "serve", "--host", "0.0.0.0", "--port", "8000"]
