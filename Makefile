# yingxi: `make demo` and `make test` each set everything up from nothing, then run.
# System packages come from apt (espeak-ng for speech; chromium for the web studio's browser test);
# Python packages go into .venv. torch is pinned to the CPU build found locally (constraints.txt).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends

.PHONY: demo test setup setup-full system system-test lint bench clean

demo: system $(VENV)/.core
	$(BIN)/yingxi generate --script examples/new-year/film.yaml -o out/demo.mp4 --burn-subtitles
	@echo "demo film: $(CURDIR)/out/demo.mp4"

test: system-test $(VENV)/.full
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/python -m pytest -q

setup: system $(VENV)/.core
setup-full: system-test $(VENV)/.full

# espeak-ng speaks dialogue; titles and subtitles are drawn by DejaVu Sans (Latin, Greek, Cyrillic,
# symbols) with WenQuanYi Micro Hei for Chinese/Japanese/Korean (media/fonts.py, per-character fallback).
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
LATIN_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
system:
	@command -v espeak-ng >/dev/null 2>&1 && [ -f $(CJK_FONT) ] && [ -f $(LATIN_FONT) ] || \
	  { $(SUDO) apt-get update -qq && $(APT_INSTALL) espeak-ng fonts-wqy-microhei fonts-dejavu-core; }

# The tests also drive the web studio in chromium, start a real PostgreSQL (initdb in a temp folder) and
# torch.compile the transformer blocks on the CPU (inductor writes C++: g++).
system-test: system
	@command -v chromium >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && \
	  command -v g++ >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core postgresql g++; }

$(VENV)/.venv-created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

# The film pipeline alone: no torch, so `make demo` is quick on a laptop.
$(VENV)/.core: pyproject.toml $(VENV)/.venv-created
	$(PIP) install -q -e .
	touch $@

# Everything: Wan engine (torch CPU), server, and test-only references (diffusers, official API clients).
$(VENV)/.full: pyproject.toml constraints.txt $(VENV)/.core
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[wan,server,test]"
	touch $@

lint: $(VENV)/.full
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

bench: system $(VENV)/.full
	$(BIN)/python bench/animatic.py

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info .pytest_cache
