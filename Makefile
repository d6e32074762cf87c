# The two entry points: `make demo` and `make test`. Both build .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRACE_TASKS ?= 500
V1_TEST_TASKS ?= 1000
V1_TRAIN_TASKS ?= 2000

.PHONY: demo test test-all lint format clean models traces traces-v0 traces-v1-test \
	traces-v1-train policies throughput docs health planner-selection grpo-selection \
	learner-seeds ppo-selection policies-v1 recording scale

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "occ-gym needs Python >= 3.10"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: a looser request pulls a CUDA build of several GB.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The verifier's seccomp filter needs the libseccomp2 system library (Debian has it in base).
	$(BIN)/python -c 'import pyseccomp' 2>/dev/null || \
		{ apt-get update -q && apt-get install -y -q libseccomp2; } || \
		{ echo "the verifier needs libseccomp2: apt-get install libseccomp2"; exit 1; }
	touch $(STAMP)

# Every policy on the held-out problems of both envs (5 seeds x 1000 problems each), the README's
# tables from those runs, and last the OCC-Code-v1 leaderboard, re-rendered from results.json.
demo: $(STAMP)
	$(BIN)/occ-gym bench --env OCC-CodeSim-v0 --out benchmarks/results/codesim
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/codesim/leaderboard.md docs/results.md codesim-bench
	$(BIN)/occ-gym bench --env OCC-Code-v0 --out benchmarks/results/code
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code/leaderboard.md docs/results.md code-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code/findings.md docs/results.md code-findings
	$(BIN)/occ-gym bench --env OCC-Code-v1 --out benchmarks/results/code-v1
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/leaderboard.md README.md code-v1-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/leaderboard.md docs/results.md code-v1-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/findings.md docs/results.md code-v1-findings
	$(MAKE) health
	@echo "The learned rows (MaskablePPO, GRPO) play occ_gym/assets/policies; make policies retrains them."
	$(BIN)/occ-gym report benchmarks/results/code-v1

# How the planner's settings were chosen: fitted on fit, played on val (about 6 minutes).
planner-selection: $(STAMP)
	$(BIN)/python benchmarks/planner_selection.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/planner_selection.md docs/health.md planner-selection

# How GRPO's OCC-Code-v1 recipe was chosen: 8 settings x 2 seeds trained on fit, scored on val
# (about 10 minutes on 2 cores).
grpo-selection: $(STAMP)
	$(BIN)/python benchmarks/grpo_selection.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/grpo_selection.md docs/training.md grpo-selection

# How MaskablePPO's OCC-Code-v1 recipe was chosen: 8 settings x 2 seeds trained on fit, two at a
# time, scored on val (about 40 minutes on 2 cores).
ppo-selection: $(STAMP)
	$(BIN)/python benchmarks/ppo_selection.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/ppo_selection.md docs/training.md ppo-selection

# The shipped GRPO and MaskablePPO seeds of OCC-Code-v1 (make policies), each on 1,000 test
# problems, with the interval across seeds (about 1 minute).
learner-seeds: $(STAMP)
	$(BIN)/python benchmarks/learner_seeds.py --algo grpo
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/learner_seeds_grpo.md docs/training.md grpo-seeds
	$(BIN)/python benchmarks/learner_seeds.py --algo maskable_ppo
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/learner_seeds_maskable_ppo.md docs/training.md ppo-seeds

# The benchmark's own health for both nano envs (the properties OCC-Code-v1 was designed to
# have, met or not), into docs/health.md: from the shipped tables and the episodes of the two
# benches make demo runs first (benchmarks/results/code and code-v1).
health: $(STAMP)
	$(BIN)/python benchmarks/benchmark_health.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/health.md docs/health.md health

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Everything make test runs, and the long runs behind the slow marker (the 5,004-candidate
# sandbox soak, every reference of 1,000 test problems, the slow benchmarks' tests).
test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "slow or not slow"

# Retrain the nano code models from scratch on CPU with the thread counts the shipped weights
# were trained with (see each card): the corpus (about 5 minutes), medium and cheap on one
# thread, then expensive on two; each is pretrained, then fine-tuned on repairs of its own
# mistakes (about 2.5 hours in all on 2 cores). Last, OCC-Code-v1's two specialists, each a copy
# of medium fine-tuned on its operation family (about 6 minutes each on one thread). Each card
# records its stages' times.
models: $(STAMP)
	$(BIN)/python -m occ_gym.train.nano --data-only
	$(BIN)/python -m occ_gym.train.nano --tiers medium cheap --threads 1 --out occ_gym/assets/models
	$(BIN)/python -m occ_gym.train.nano --tiers expensive --threads 2 --out occ_gym/assets/models
	$(BIN)/python -m occ_gym.train.nano --tiers medium-filters medium-arithmetic --threads 1 \
		--eval-problems 300 --out occ_gym/assets/models

# Re-record the shipped trace tables with the shipped models (resumable: rerun after a kill):
# OCC-Code-v0's (about 10 minutes on 2 cores), then OCC-Code-v1's, 5 tiers x 8 samples with
# 2 repair rounds on 1,000 test and 2,000 train tasks (the shipped tables took 33 and 58 minutes
# as two processes side by side on 2 cores: OMP_NUM_THREADS=1 make -j2 traces-v1-test
# traces-v1-train; about 2 CPU hours).
traces: traces-v0 traces-v1-test traces-v1-train

traces-v0: $(STAMP)
	$(BIN)/occ-gym record --split test --tasks $(TRACE_TASKS) --out occ_gym/assets/traces/test.parquet
	$(BIN)/occ-gym record --split train --tasks $(TRACE_TASKS) --out occ_gym/assets/traces/train.parquet

traces-v1-test: $(STAMP)
	$(BIN)/occ-gym record --suite nano-v1 --split test --tasks $(V1_TEST_TASKS) \
		--out occ_gym/assets/traces/v1/test.parquet

traces-v1-train: $(STAMP)
	$(BIN)/occ-gym record --suite nano-v1 --split train --tasks $(V1_TRAIN_TASKS) \
		--out occ_gym/assets/traces/v1/train.parquet

# Re-record OCC-Traces-v0's demo recording: the nano generalists as a pool file on 200
# OCC-Code-v1 train problems exported as a task pack, 4 samples, 2 repair rounds (resumable).
DEMO_RECORDING := occ_gym/assets/recordings/nano-demo
recording: $(STAMP)
	mkdir -p build
	$(BIN)/occ-gym pack --source synthetic-v1 --split train --tasks 200 --out build/demo-pack.jsonl
	$(BIN)/occ-gym record --pool occ_gym/assets/pools/nano.toml --tasks build/demo-pack.jsonl \
		--out $(DEMO_RECORDING) --samples 4 --repair-rounds 2

# Retrain the shipped allocators with the commands recorded in their run.json and copy them into
# the package: OCC-Code-v1's learners, 5 training seeds each (policies-v1), OCC-Code-v0 at its
# own λ and at the other λ of its cost-quality curve, and OCC-CodeSim-v0 (their last
# checkpoints; about 2.5 minutes each on 2 cores).
SWEEP_LAMBDAS := 0.00025 0.001 0.002 0.004
V1_LEARNERS := maskable_ppo grpo
V1_SEEDS := 0 1 2 3 4
policies: policies-v1
	rm -rf runs/shipped-OCC-Code-v0
	$(BIN)/occ-gym train --env OCC-Code-v0 --seed 0 --out runs/shipped-OCC-Code-v0
	$(BIN)/python -m occ_gym.policies.learned runs/shipped-OCC-Code-v0 --dest occ_gym/assets/policies
	for lam in $(SWEEP_LAMBDAS); do \
		rm -rf runs/sweep-OCC-Code-v0-$$lam && \
		$(BIN)/occ-gym train --env OCC-Code-v0 --seed 0 --out runs/sweep-OCC-Code-v0-$$lam \
			--env-kwarg "oracle={compute_penalty = $$lam}" && \
		$(BIN)/python -m occ_gym.policies.learned runs/sweep-OCC-Code-v0-$$lam \
			--dest occ_gym/assets/policies || exit 1; \
	done
	rm -rf runs/shipped-OCC-CodeSim-v0
	$(BIN)/occ-gym train --env OCC-CodeSim-v0 --seed 0 --out runs/shipped-OCC-CodeSim-v0
	$(BIN)/python -m occ_gym.policies.learned runs/shipped-OCC-CodeSim-v0 --dest occ_gym/assets/policies

# OCC-Code-v1's learners with the recipes of its hyperparameter file, one run per seed, each
# run's best.zip (chosen on val) shipped as <algo>/seed=<k>/ (about 25 minutes on 2 cores).
policies-v1: $(STAMP)
	rm -rf occ_gym/assets/policies/OCC-Code-v1
	for algo in $(V1_LEARNERS); do for seed in $(V1_SEEDS); do \
		rm -rf runs/shipped-OCC-Code-v1-$$algo-$$seed && \
		$(BIN)/occ-gym train --env OCC-Code-v1 --algo $$algo --seed $$seed \
			--out runs/shipped-OCC-Code-v1-$$algo-$$seed && \
		$(BIN)/python -m occ_gym.policies.learned runs/shipped-OCC-Code-v1-$$algo-$$seed \
			--dest occ_gym/assets/policies --seeded --checkpoint best.zip || exit 1; \
	done; done

# Speed and memory against Gymnasium's CartPole (about 4 minutes), and its table in docs/.
throughput: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/throughput.md docs/performance.md throughput
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/throughput_headline.md README.md throughput-headline

# Recording on Ray against the plain single-process record at equal cores (local clusters of
# one and two nodes; about 11 minutes on 2 cores), and its table in docs/scale.md.
scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/scale.md docs/scale.md scale

# Copy every generated table in benchmarks/results/ into its page (the benchmarks write them;
# nothing in README.md or docs/ between <!-- name:start/end --> markers is typed by hand).
docs: $(STAMP)
	$(BIN)/python benchmarks/env_reference.py
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/env_observation.md docs/environment.md env-observation
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/leaderboard.md README.md code-v1-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/leaderboard.md docs/results.md code-v1-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code-v1/findings.md docs/results.md code-v1-findings
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code/leaderboard.md docs/results.md code-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/code/findings.md docs/results.md code-findings
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/health.md docs/health.md health
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/planner_selection.md docs/health.md planner-selection
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/codesim/leaderboard.md docs/results.md codesim-bench
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/model_cards.md docs/environment.md models
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/retry_cost.md docs/environment.md retry
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/ppo.md docs/training.md ppo
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/grpo_selection.md docs/training.md grpo-selection
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/ppo_selection.md docs/training.md ppo-selection
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/learner_seeds_grpo.md docs/training.md grpo-seeds
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/learner_seeds_maskable_ppo.md docs/training.md ppo-seeds
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/throughput.md docs/performance.md throughput
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/throughput_headline.md README.md throughput-headline
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/verifier.md docs/verifier.md verifier
	$(BIN)/python benchmarks/update_readme.py benchmarks/results/scale.md docs/scale.md scale

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
