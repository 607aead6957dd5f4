# Everyday commands.  `make setup-venv` once, then `make tests` (everything, as CI runs it)
# or `make test-quick` (no schedulers, no reference venvs) while iterating.

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=
QUICK_MARKERS := not integration and not slurm and not sge and not reference and not rabbitmq and not galaxy

.PHONY: help setup-venv tests test-quick lint bench bench-mq bench-wsgi dist clean

help:
	@echo "setup-venv  create $(VENV) with pulsar (editable) and the dev tools"
	@echo "tests       the whole suite (needs the schedulers of test/infra for the slurm/sge tests)"
	@echo "test-quick  fast subset: no integration, scheduler or reference-client tests"
	@echo "lint        ruff + mypy on pulsar/"
	@echo "bench       run bench/run.py (our server and client against the reference, HTTP and message queue)"
	@echo "bench-mq    only its message-queue section (needs RabbitMQ on 127.0.0.1:5672)"
	@echo "bench-wsgi  run bench/wsgi_servers.py (our app under our server, Paste, waitress, cheroot, gunicorn)"
	@echo "dist        build an sdist and a wheel (from that sdist) into dist/"

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade --disable-pip-version-check -q pip

setup-venv: $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q -e '.[drmaa,amqp,paster,metrics,deps,oidc]' -r dev-requirements.txt

tests:
	$(VPY) -m pytest -p no:cacheprovider -ra $(PYTEST_ARGS)

test-quick:
	$(VPY) -m pytest -p no:cacheprovider -ra -m "$(QUICK_MARKERS)" $(PYTEST_ARGS)

lint:
	$(VPY) -m ruff check pulsar test
	$(VPY) -m mypy pulsar

bench:
	$(VPY) bench/run.py

bench-mq:
	$(VPY) bench/run.py --only mq

bench-wsgi:
	$(VPY) bench/wsgi_servers.py

# The sdist first, then the wheel built from it (python -m build's default), each in a fresh
# build environment: what a release uploads, and proof that the sdist is complete.
dist:
	rm -rf dist build
	$(VPY) -m build --outdir dist .

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache
