# Conveyor: two commands on a fresh Debian 12 machine.
#   make run    install what is missing, build, start private Redis + PostgreSQL, run the worker with example jobs
#   make test   the same setup, then the whole test suite against those servers
SHELL := /bin/bash
CONFIG ?= debug

.PHONY: run test build setup services-up services-down bench clean

setup:
	@scripts/setup.sh

build: setup
	swift build -c $(CONFIG)

run: build
	@scripts/run.sh

test: setup
	@scripts/test.sh

bench: setup
	@Benchmarks/run.sh

services-up: setup
	@scripts/services.sh start

services-down:
	@scripts/services.sh stop

clean: services-down
	rm -rf .build .run
