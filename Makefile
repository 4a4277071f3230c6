# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install ffmpeg jpeg_roi test demo data clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ffmpeg jpeg_roi

# FFmpeg's shared libraries for --decoder torchcodec (optional): installed with apt-get where this
# runs as root on Debian/Ubuntu; elsewhere a note, and the torchcodec tests are skipped.
ffmpeg: $(STAMP)
	@$(PY) -c "from ops.dataset import check_torchcodec; check_torchcodec()" 2>/dev/null || \
	{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1; }; }; } || \
	echo "note: --decoder torchcodec needs FFmpeg's shared libraries (apt-get install ffmpeg); its tests are skipped"

# Region JPEG decoding (ops/jpeg_roi.c, built here ahead of the first run) needs a C compiler and
# libjpeg-turbo's headers: installed with apt-get where this runs as root on Debian/Ubuntu;
# elsewhere a note, and JPEG frames are decoded whole, then cropped (the same pixels, slower).
jpeg_roi: $(STAMP)
	@$(PY) -c "import sys; from ops import jpeg_roi; sys.exit(not jpeg_roi.available())" 2>/dev/null || \
	{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -qq --no-install-recommends gcc libc6-dev libjpeg-dev >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends gcc libc6-dev libjpeg-dev >/dev/null 2>&1; }; } && \
	  $(PY) -c "from ops import jpeg_roi; jpeg_roi.build()"; } || \
	echo "note: region JPEG decoding needs a C compiler and libjpeg-turbo's headers (apt-get install gcc libjpeg-dev); frames are decoded whole"

test: install
	$(PY) -m pytest -q tests

demo: install
	PYTHON=$(PY) bash scripts/demo.sh

clean:
	rm -rf $(VENV) log checkpoint data/synthetic
