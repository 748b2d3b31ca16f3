# Every routine task of the project. `make test` works from a fresh clone on a fresh
# machine: it installs Debian packages, builds the virtualenv and generates the stubs.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
STAMP    := $(VENV)/.installed
PROTO_OUT := joblet/api/joblet_pb2.py
DEB_PKGS := iproute2 e2fsprogs util-linux procps nftables python3 python3-pip python3-setuptools python3-wheel

.PHONY: all deps venv proto lint test test-unit test-integration test-e2e demo demo-local bench clean \
	k8s-bins cluster-up cluster-down

all: test

deps: ## Debian packages the agent and the tests use
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(PROTO_OUT): proto/joblet.proto $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -Ijoblet/api=proto \
	  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
	  proto/joblet.proto

proto: $(PROTO_OUT) ## generate the Python stubs from proto/joblet.proto

lint: proto ## ruff, mypy --strict, import-linter contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy joblet node_agent operator/joblet_operator tests bench demo crds
	$(VENV)/bin/lint-imports

test-unit: proto
	$(PY) -m pytest -q tests/unit

test-integration: deps proto
	$(PY) -m pytest -q tests/integration

test-e2e: deps proto k8s-bins
	$(PY) -m pytest -q tests/e2e

test: deps lint k8s-bins ## everything: lint and all three test tiers
	$(PY) -m pytest -q -ra tests

demo: deps proto k8s-bins ## control plane + operator + two agent nodes; applies the examples
	$(PY) -m demo $(DEMO_ARGS)

demo-local: deps proto ## one local agent, jobs run through the joblet CLI
	$(PY) -m demo --local $(DEMO_ARGS)

bench: deps proto k8s-bins ## benchmarks, printing figures beside their targets
	$(PY) -m bench

k8s-bins: ## etcd, kube-apiserver, kube-controller-manager, kubectl, helm: built once, cached
	@hack/k8s/build.sh

cluster-up: k8s-bins $(STAMP) ## a local control plane that stays up; prints `export KUBECONFIG=...`
	@$(PY) -m joblet.devcluster up

cluster-down: $(STAMP) ## stop what cluster-up started and remove its files
	@$(PY) -m joblet.devcluster down

clean:
	rm -rf $(VENV) build *.egg-info joblet/api/joblet_pb2*
