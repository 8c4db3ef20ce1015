# leadflow — the two commands: `make run` and `make test`. See README.md.
.PHONY: all build run test unit e2e bench format format-check deps clean

BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc)
VAR        ?= var

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target leadflow

# Sets everything up and serves on 127.0.0.1:8080 with ./var/leadflow.db.
run: build
	@mkdir -p $(VAR)
	@test -s $(VAR)/jwt-secret || (umask 077; openssl rand -hex 32 > $(VAR)/jwt-secret)
	@LEADFLOW_JWT_SECRET=$$(cat $(VAR)/jwt-secret) LEADFLOW_DB=$${LEADFLOW_DB:-$(VAR)/leadflow.db} \
	  scripts/run-server $(BUILD)/leadflow

# Builds with ASan, UBSan and -Werror, then runs the unit and end-to-end tests.
test: deps format-check
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLEADFLOW_SANITIZE=ON \
	  -DLEADFLOW_WERROR=ON -DLEADFLOW_TESTING=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	@scripts/run-tests $(TEST_BUILD)

bench: deps
	@scripts/install-deps bench
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target leadflow lf-loadgen lf-receiver
	@bench/run.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'bench/*.c')

format-check:
	@out=$$(clang-format --dry-run $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'bench/*.c') 2>&1); \
	  if [ -n "$$out" ]; then echo "$$out" | head -20; echo "clang-format: run 'make format'"; exit 1; fi

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
