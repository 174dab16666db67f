# The two commands a newcomer runs on a fresh Debian machine: `make demo` and `make test`.
# Both create .venv, install netmon with its extras, and apt-install the programs the tests
# talk to when they are missing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# command:package pairs; a package is installed only when its command is missing.
SYSTEM_TOOLS := ip:iproute2 sysctl:procps setpriv:util-linux promtool:prometheus \
  prometheus:prometheus snmpd:snmpd snmpbulkwalk:snmp snmptrap:snmp \
  mosquitto:mosquitto mosquitto_sub:mosquitto-clients \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
  kamailio:kamailio baresip:baresip-core sipsak:sipsak victoria-metrics:victoria-metrics \
  chromium:chromium chromedriver:chromium-driver \
  systemd-analyze:systemd systemd-sysusers:systemd
# file-or-soname:package pairs for what no command shows: a package is installed only when its
# shared library is not in ldconfig's cache (a soname) or its file is missing (a path). The PDF
# report's WeasyPrint loads Pango at run time, and prints Vietnamese in DejaVu Sans.
SYSTEM_LIBS := libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
  /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core
# Peers that only the benchmarks measure netmon against.
BENCH_TOOLS := fping:fping prometheus-snmp-exporter:prometheus-snmp-exporter \
  prometheus-blackbox-exporter:prometheus-blackbox-exporter snmptrapd:snmptrapd

.PHONY: setup system-deps bench-deps apt-missing demo test lint format bench lossy-links soak \
  storm fuzz outage clean

setup: system-deps $(STAMP)

system-deps:
	@$(MAKE) --no-print-directory apt-missing TOOLS="$(SYSTEM_TOOLS)" LIBS="$(SYSTEM_LIBS)"

bench-deps:
	@$(MAKE) --no-print-directory apt-missing TOOLS="$(BENCH_TOOLS)"

# Installs the Debian package of every command:package pair in TOOLS whose command is missing,
# and of every file-or-soname:package pair in LIBS whose file or shared library is missing.
apt-missing:
	@missing=""; \
	for pair in $(TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	cache=$$(PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null); \
	for pair in $(LIBS); do \
	  need="$${pair%:*}"; \
	  case "$$need" in \
	    /*) test -e "$$need" ;; \
	    *) awk -v lib="$$need" '$$1 == lib { found = 1 } END { exit !found }' <<<"$$cache" ;; \
	  esac || missing="$$missing $${pair##*:}"; \
	done; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,dev,lab,grafana,report]'
	touch $@

demo: setup
	$(BIN)/netmon demo

lint: $(STAMP)
	$(BIN)/ruff check netmon collectors netmon_lab dashboards tests bench
	$(BIN)/ruff format --check netmon collectors netmon_lab dashboards tests bench
	$(BIN)/mypy --strict netmon collectors netmon_lab

format: $(STAMP)
	$(BIN)/ruff format netmon collectors netmon_lab dashboards tests bench
	$(BIN)/ruff check --fix netmon collectors netmon_lab dashboards tests bench

# Two pytest-xdist workers: most of the suite waits on peer programs, the lab and timers, not
# on the CPU. A module's tests stay on one worker, and the modules that run `netmon demo` on one
# worker in turn, first (tests/conftest.py says why).
test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

bench: setup bench-deps
	$(BIN)/python -m bench.icmp_bench
	$(BIN)/python -m bench.engine_bench
	$(BIN)/python -m bench.scrape_bench
	$(BIN)/python -m bench.memory_bench --minutes 3
	$(BIN)/python -m bench.snmp_bench
	$(BIN)/python -m bench.trap_bench
	$(BIN)/python -m bench.alert_bench
	$(BIN)/python -m bench.check_bench
	$(BIN)/python -m bench.sip_bench
	$(BIN)/python -m bench.service_bench
	$(BIN)/python -m bench.xapi_poll
	$(BIN)/python -m bench.poly_bench
	$(BIN)/python -m bench.registrar_bench
	$(BIN)/python -m bench.journal_size

# Issue 13's proof campaign (~10 min, root): netmon on lossy lab links, goal by goal. Not part
# of `test` or `bench`. A quick self-check: make lossy-links ARGS="--minutes 1 --endpoints 10"
lossy-links: setup
	$(BIN)/python -m bench.lossy_links $(ARGS)

# issue 14's soak: the demo for 30 minutes, a fault a minute; memory, fds, tasks, series flat.
soak: setup
	$(BIN)/python -m bench.soak $(ARGS)

# Issue 14's trap storm (~2.5 min): 20,000 traps in 10 s from 50 loopback sources against one
# `netmon run` polling 215 endpoints, goal by goal. Not part of `test` or `bench`. A quick
# self-check: make storm ARGS="--traps 2000 --seconds 2 --rounds 1 --settle 5"
storm: setup bench-deps
	$(BIN)/python -m bench.storm $(ARGS)

# Issue 14's fuzz campaign (~12 min): every parser an outsider can feed, 20000 inputs each,
# and datagram decode time against size. Not part of `test` (which runs ~200 inputs each) or
# `bench`. A quick one: make fuzz ARGS="--examples 2000"
fuzz: setup
	$(BIN)/python -m bench.fuzz $(ARGS)

# Issue 14's outages (~5 min, root): broker and Alertmanager down 60 s, SIGKILL during a
# burst of transitions, the alert database's disk full; real peers, goal by goal. Not part of
# `test` or `bench`. A quick self-check:
# make outage ARGS="--broker-down 10 --burst 12 --disk-full 15"
outage: setup
	$(BIN)/python -m bench.outage $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
