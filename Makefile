# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-quick lint format bench clean

$(STAMP): pyproject.toml constraints.txt tests/browser/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# axe-core for the accessibility tests of the pages (tests/test_pages.py); skipped without npm
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/browser --no-audit --no-fund --silent; fi
	touch $(STAMP)

install: $(STAMP)

DEMO_VERSION := releases/work-programme-subcontractor-mi/1.0.0
HUB := hub

demo: $(STAMP)
	$(BIN)/opendata sample --out mi/ --rows 200000 --seed 1
	$(BIN)/opendata validate specs/work-programme-annual.yaml mi/*.csv
	@if [ -d $(DEMO_VERSION) ]; then \
		echo "$(DEMO_VERSION) is already published and is never overwritten; remove it to cut the demo again"; \
	else \
		$(BIN)/opendata release specs/work-programme-annual.yaml mi/*.csv --out releases/ \
			--calendar specs/calendar.yaml --release-time 2026-11-12T09:30:00+00:00 \
			--late --reason "demonstration on synthetic sample data, cut after its scheduled time"; \
	fi
	@if [ ! -f publisher.key ]; then $(BIN)/opendata keys generate --private publisher.key --public publisher.pub; fi
	$(BIN)/opendata publish --out releases/ --key publisher.key
	$(BIN)/opendata check-spreadsheet $(DEMO_VERSION)/*.ods $(DEMO_VERSION)/*.xlsx
	$(BIN)/opendata css check specs/css/*.yaml
	@# prime P01's Customer Service Standards and complaints, on a sample with its journey events (issue 16)
	$(BIN)/opendata sample --out mi-css/ --rows 20000 --months 30 --seed 1 --journey --format csv -q
	$(BIN)/opendata css measure specs/work-programme.yaml mi-css/work-programme-mi.csv \
		--events mi-css/work-programme-journey.csv --framework specs/css/P01.yaml --out mi-css/P01-css.csv
	$(BIN)/opendata css complaints specs/work-programme.yaml mi-css/work-programme-mi.csv \
		--record mi-css/work-programme-complaints.csv --prime P01 --out mi-css/P01-complaints.csv
	@# the comparative performance hub: two community publishers and DWP's tree above (issue 15);
	@# three months each, as an upload protected against insiders takes minutes per sparse month (README)
	@if [ ! -d $(HUB) ]; then \
		$(BIN)/opendata hub init $(HUB) && \
		$(BIN)/opendata hub add-org $(HUB) north-works --title "North Works (synthetic)" && \
		$(BIN)/opendata hub add-org $(HUB) south-skills --title "South Skills (synthetic)" && \
		$(BIN)/opendata sample --out mi-hub/north --rows 4000 --months 3 --seed 21 --format csv -q && \
		$(BIN)/opendata sample --out mi-hub/south --rows 4000 --months 3 --seed 22 --format csv -q && \
		$(BIN)/opendata hub upload $(HUB) north-works mi-hub/north/work-programme-mi.csv --publish && \
		$(BIN)/opendata hub upload $(HUB) south-skills mi-hub/south/work-programme-mi.csv --publish && \
		$(BIN)/opendata hub subscribe $(HUB) dwp releases/ --trust publisher.pub \
			--title "Department for Work and Pensions" --kind "management information"; \
	fi
	$(BIN)/opendata hub refresh $(HUB)
	@echo "Start the hub with: $(BIN)/opendata hub serve $(HUB)   then open http://127.0.0.1:8080/compare"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=40

# everything not marked slow (the engine, unit and cheaper property tests): 83 s on 2 cores
test-quick: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) mi mi-hub bench/out .pytest_cache .hypothesis
