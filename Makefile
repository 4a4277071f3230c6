# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install ffmpeg test demo data clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ffmpeg

# FFmpeg's shared libraries for --decoder torchcodec (optional): installed with apt-get where this
# runs as root on Debian/Ubuntu; elsewhere a note, and the torchcodec tests are skipped.
ffmpeg: $(STAMP)
	@$(PY) -c "from ops.dataset import check_torchcodec; check_torchcodec()" 2>/dev/null || \
	{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1; }; }; } || \
	echo "note: --decoder torchcodec needs FFmpeg's shared libraries (apt-get install ffmpeg); its tests are skipped"

test: install
	$(PY) -m pytest -q tests

demo: install
	PYTHON=$(PY) bash scripts/demo.sh

clean:
	rm -rf $(VENV) log checkpoint data/synthetic
