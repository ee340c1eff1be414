# Pond build.
#
#   make            build everything (release flavour) into build/release
#   make test       install what is missing, build with ASan+UBSan, run every test
#   make run        install what is missing, build, start a local stack with demo traffic
#   make bench      install what is missing, build release, run the benchmarks and
#                   rewrite BENCHMARKS.md (BENCH=full for the large sizes,
#                   BENCH_ONLY=reports for the report latency step alone)
#   make deps       install the Debian packages the project needs (idempotent)
#   make images     build the Docker images (base image with mmdebstrap, once)
#   make test-compose  the compose stack: publish, SIGKILL ingest, count
#   make test-faults   every service killed, the store restarted, the gateway
#                   stalled, a SUB link cut, while events flow; counted
#                   (POND_FAULTS=short, the default, or long)
#   make test-dashboard  the dashboard page in headless Chromium (mock API)
#   make format     clang-format every C file in place
#   make fuzz       each libFuzzer target for FUZZ_TIME CPU seconds (600);
#                   make fuzz-ci is the short CI run (docs/reliability.md)
#   make sql-check  no SQL built from text (run by make test)
#
# BUILD selects the flavour: release (default), asan (AddressSanitizer and
# UBSan, used by the tests), debug or fuzz (clang, libFuzzer, ASan, UBSan).
# Each flavour has its own tree under build/, so switching never mixes
# objects.

BUILD ?= release
O := build/$(BUILD)

CC ?= cc
CSTD := -std=c17 -D_GNU_SOURCE
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
INCS := -Icommon -I$(O)/gen -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
DEPFLAGS = -MMD -MP

ifeq ($(BUILD),release)
OPT := -O2 -g
else ifeq ($(BUILD),asan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
else ifeq ($(BUILD),debug)
OPT := -O0 -g
else ifeq ($(BUILD),fuzz)
# libFuzzer instruments everything it links; only fuzz/ targets get main.
CC := clang
OPT := -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
else
$(error BUILD must be release, asan, debug or fuzz)
endif

CFLAGS := $(CSTD) $(WARN) $(OPT) $(INCS) -pthread
LDFLAGS := $(OPT) -pthread
LIBS := -lnng -lprotobuf-c -lpq -luv -ljansson -lmicrohttpd -lcrypto -lm
# Generated protobuf-c code is not ours to warn about.
GENFLAGS := $(CSTD) $(OPT) $(INCS) -w

# --- generated code -------------------------------------------------------
PROTOS := $(sort $(wildcard proto/pond/*.proto))
GEN_PB := $(patsubst proto/%.proto,$(O)/gen/%.pb-c.c,$(PROTOS)) \
	$(O)/gen/google/protobuf/timestamp.pb-c.c
GEN_PB_H := $(GEN_PB:.c=.h)
MIGRATIONS := $(sort $(wildcard deploy/migrations/*.sql))
GEN_SRC := $(GEN_PB) $(O)/gen/migrations.c

$(O)/gen/.stamp: $(PROTOS) | $(O)/gen
	protoc-c -Iproto -I/usr/include --c_out=$(O)/gen $(PROTOS:proto/%=%) \
		google/protobuf/timestamp.proto
	touch $@

$(GEN_PB) $(GEN_PB_H): $(O)/gen/.stamp

$(O)/gen/migrations.c: $(MIGRATIONS) mk/embed-sql.sh | $(O)/gen
	sh mk/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(O)/gen:
	mkdir -p $@

# --- libpond: common/ plus generated code ------------------------------------
COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(O)/obj/%.o) $(GEN_SRC:$(O)/gen/%.c=$(O)/obj/gen/%.o)
LIBPOND := $(O)/libpond.a

$(LIBPOND): $(COMMON_OBJ)
	rm -f $@ && ar rcs $@ $^

$(O)/obj/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GENFLAGS) -c $< -o $@

$(O)/obj/%.o: %.c $(O)/gen/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# --- programs ---------------------------------------------------------------
# Each services/NAME/ with a main.c becomes bin/pond-NAME; the service's other
# files are also linked into the test binary so unit tests can reach them.
SERVICES := $(patsubst services/%/main.c,%,$(wildcard services/*/main.c))
SERVICE_BINS := $(SERVICES:%=$(O)/bin/pond-%)
CLI_SRC := $(sort $(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(O)/obj/%.o)

define service_rules
$(1)_SRC := $$(sort $$(wildcard services/$(1)/*.c))
$(1)_OBJ := $$($(1)_SRC:%.c=$$(O)/obj/%.o)
$(1)_LIBOBJ := $$(filter-out %/main.o,$$($(1)_OBJ))
$$(O)/bin/pond-$(1): $$($(1)_OBJ) $$(LIBPOND)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))
SERVICE_LIBOBJ := $(foreach s,$(SERVICES),$($(s)_LIBOBJ))

# The dashboard (docs/dashboard.md): the page's files and ECharts from npm
# (web/package-lock.json; npm ci runs again only when the lockfile changes)
# are gathered by mk/dashboard.sh into a generated C file that embeds them
# with .incbin, linked into pond-reporting and the test binary.
NPM_STAMP := web/node_modules/.package-lock.json
DASH_FILES := $(sort $(wildcard services/reporting/dashboard/*)) \
	web/node_modules/echarts/dist/echarts.min.js
DASH_GEN := $(O)/gen/dashboard_assets.c
DASH_GEN_OBJ := $(O)/obj/gen/dashboard_assets.o
DASH_OBJ := $(O)/obj/services/reporting/dashboard.o

$(NPM_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web/node_modules/echarts/dist/echarts.min.js: $(NPM_STAMP)

$(DASH_GEN): $(DASH_FILES) $(NPM_STAMP) mk/dashboard.sh | $(O)/gen
	sh mk/dashboard.sh $(O)/gen/dashboard $(DASH_FILES) > $@.tmp
	mv $@.tmp $@

$(DASH_GEN_OBJ): GENFLAGS += -Iservices/reporting
$(DASH_GEN_OBJ): services/reporting/dashboard.h common/http.h
$(O)/bin/pond-reporting: $(DASH_GEN_OBJ)
$(O)/bin/pond-dashboard-serve: $(DASH_OBJ) $(DASH_GEN_OBJ)
SERVICE_LIBOBJ := $(sort $(SERVICE_LIBOBJ) $(DASH_OBJ)) $(DASH_GEN_OBJ)

# The CLI checks tag rules with common/cond.c (in libpond), campaigns with
# the scheduler's own spec code (so both refuse what the APIs refuse), and
# prints reports with the reporting service's report code (not the page).
CLI_SVC_OBJ := $(O)/obj/services/scheduler/campaign.o \
	$(filter-out $(DASH_OBJ),$(reporting_LIBOBJ))
$(O)/obj/cli/%.o: CFLAGS += -Iservices/scheduler -Iservices/reporting
$(O)/bin/pond: $(CLI_OBJ) $(CLI_SVC_OBJ) $(LIBPOND)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Test-only programs (tests/tools/NAME.c -> bin/NAME), e.g. the probe
# consumer the stream tests kill and restart.
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(O)/bin/%)

$(O)/bin/%: $(O)/obj/tests/tools/%.o $(LIBPOND)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Benchmark load generators (bench/NAME.c -> bin/NAME), sharing bench/lib/.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(O)/bin/%)
BENCH_LIB_SRC := $(sort $(wildcard bench/lib/*.c))
BENCH_LIB_OBJ := $(BENCH_LIB_SRC:%.c=$(O)/obj/%.o)

$(O)/obj/bench/%.o: CFLAGS += -Ibench/lib
$(BENCH_BINS): $(O)/bin/%: $(O)/obj/bench/%.o $(BENCH_LIB_OBJ) $(LIBPOND)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

PROGRAMS := $(SERVICE_BINS) $(O)/bin/pond

# libFuzzer targets (fuzz/NAME.c -> bin/NAME, BUILD=fuzz only), linked with
# every service's objects like the test binary.
FUZZ_SRC := $(sort $(wildcard fuzz/*.c))
FUZZ_BINS := $(FUZZ_SRC:fuzz/%.c=$(O)/bin/%)

$(O)/obj/fuzz/%.o: CFLAGS += $(SERVICES:%=-Iservices/%)
$(FUZZ_BINS): $(O)/bin/%: $(O)/obj/fuzz/%.o $(SERVICE_LIBOBJ) $(LIBPOND)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

# --- tests ------------------------------------------------------------------
# One Criterion binary holds every suite, so a run ends with one summary line.
TEST_SRC := $(sort $(wildcard tests/unit/*.c tests/integration/*.c tests/lib/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(O)/obj/%.o)
TEST_BIN := $(O)/bin/pond-tests

$(O)/obj/tests/%.o: CFLAGS += -Itests/lib $(SERVICES:%=-Iservices/%) \
	-Iservices/reporting
$(TEST_BIN): $(TEST_OBJ) $(SERVICE_LIBOBJ) $(LIBPOND)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# --- top-level targets --------------------------------------------------------
.PHONY: all deps test test-build run bench bench-build images test-compose \
	test-faults format format-check clean test-dashboard fuzz fuzz-build \
	fuzz-ci sql-check
.DEFAULT_GOAL := all

all: $(PROGRAMS)

deps:
	@sh mk/deps.sh

test: deps
	$(MAKE) --no-print-directory BUILD=asan test-build
	$(MAKE) --no-print-directory format-check
	$(MAKE) --no-print-directory BUILD=asan test-dashboard
	$(MAKE) --no-print-directory sql-check
	sh tests/run.sh build/asan

# The load generators are built with the tests too, so that they keep
# compiling (and stay warning-free) as the code they link changes.
test-build: $(PROGRAMS) $(TOOL_BINS) $(TEST_BIN) $(BENCH_BINS)

run: deps
	$(MAKE) --no-print-directory BUILD=release all
	sh mk/run.sh build/release

# BENCH=quick (default, within 15 minutes on two cores) or BENCH=full;
# BENCH_ONLY=reports runs only the report latency step.
BENCH ?= quick
BENCH_ONLY ?=

bench: deps
	@sh bench/deps.sh
	$(MAKE) --no-print-directory BUILD=release bench-build
	BENCH=$(BENCH) BENCH_ONLY=$(BENCH_ONLY) sh bench/run.sh build/release

bench-build: $(PROGRAMS) $(BENCH_BINS)

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common services cli tests bench -name '*.[ch]')

# images: the local base image (mmdebstrap) and every compose image.
images:
	sh mk/images.sh

# test-compose: the stack as containers, with a SIGKILL while events flow.
test-compose: deps images
	$(MAKE) --no-print-directory BUILD=release all
	sh tests/compose/run.sh build/release

test-faults: deps
	$(MAKE) --no-print-directory BUILD=release all
	sh tests/faults/run.sh build/release

# test-dashboard: the dashboard page in headless Chromium (tests/dashboard/),
# against the mock API, the page served by pond-dashboard-serve (the
# embedded files); with POND_DASHBOARD_URL and POND_DASHBOARD_TOKEN set,
# against that pond-reporting instead.
test-dashboard: deps $(O)/bin/pond-dashboard-serve $(NPM_STAMP)
	POND_DASHBOARD_SERVER=$(O)/bin/pond-dashboard-serve node --test \
		tests/dashboard/format.test.js tests/dashboard/dashboard.test.js

# fuzz: each libFuzzer target for FUZZ_TIME seconds (default 600), one at a
# time under nice, from the seed corpus in fuzz/corpus/NAME; new inputs go
# to build/fuzz/corpus/NAME, crashes to build/fuzz/crashes/. fuzz-ci: the
# seeds and the regression inputs, then 20 s of each target.
FUZZ_TIME ?= 600

# clang (libFuzzer) and time(1) are needed only here.
FUZZ_DEPS := clang time

fuzz: deps
	@sh mk/deps.sh $(FUZZ_DEPS)
	$(MAKE) --no-print-directory BUILD=fuzz fuzz-build
	FUZZ_TIME=$(FUZZ_TIME) sh mk/fuzz.sh build/fuzz

fuzz-ci: deps
	@sh mk/deps.sh $(FUZZ_DEPS)
	$(MAKE) --no-print-directory BUILD=fuzz fuzz-build
	FUZZ_TIME=20 sh mk/fuzz.sh build/fuzz

fuzz-build: $(FUZZ_BINS)

# sql-check: no SQL text is built from input (mk/sql-check.sh).
sql-check:
	@sh mk/sql-check.sh --self-test && sh mk/sql-check.sh

format:
	clang-format -i $(C_FILES)

format-check:
	@clang-format --dry-run --Werror $(C_FILES) && echo "format: ok"

clean:
	rm -rf build

-include $(COMMON_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(CLI_OBJ:.o=.d) \
	$(TOOL_SRC:%.c=$(O)/obj/%.d) $(FUZZ_SRC:%.c=$(O)/obj/%.d) \
	$(BENCH_SRC:%.c=$(O)/obj/%.d) $(BENCH_LIB_OBJ:.o=.d) \
	$(foreach s,$(SERVICES),$($(s)_OBJ:.o=.d)) $(DASH_OBJ:.o=.d)
