PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := stemscribe/data/example.flac

.PHONY: install run serve test test-all bench lint clean

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

bench: install
	$(BIN)/python -m bench.run

lint:
	$(BIN)/ruff check stemscribe tests bench training
	$(BIN)/ruff format --check stemscribe tests bench training
	$(BIN)/mypy stemscribe

clean:
	rm -rf $(VENV) out build *.egg-info
