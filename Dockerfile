# The stemscribe image of docker-compose.yml: API node (`stemscribe serve`) or worker (`stemscribe worker`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stemscribe ./stemscribe
# basic-pitch's wheel carries the ONNX model; its metadata pulls TensorFlow, hence --no-deps (as the Makefile)
RUN pip install --no-cache-dir '.[scale]' && pip install --no-cache-dir --no-deps 'basic-pitch==0.4.0'
ENV STEMSCRIBE_DATA_DIR=/var/lib/stemscribe
EXPOSE 8000
CMD ["stemscribe", "serve", "--host", "0.0.0.0", "--port", "8000"]
