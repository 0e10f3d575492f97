#!/usr/bin/env bash
# The main job, run through the service: starts agt-server on an embedded
# SQLite file (a temp dir, 127.0.0.1, a free port), uploads the built-in
# half-moons dataset with agtctl, trains a linear model on cubic features
# certified against the removal of up to n = 1, 2, 5, 10, 20 rows per batch
# (examples/moons_unlearning.json, done offline by `agt train`), follows it with
# a live progress bar, prints the model, per-point certificates for
# examples/moons_queries.csv and certified accuracy on held-out rows, sends
# deletion requests and checks which predictions stay certified unchanged,
# then trains a blobs network under substitution budgets and releases
# differentially private labels (smooth sensitivity vs the Laplace baseline,
# scored on held-out rows, against a privacy budget of 220), then stops the
# server with SIGTERM.
#
# Needs a build (the README's command builds first): BUILD_DIR (default
# build/) with core/cli/agt, server/agt-server and client/agtctl.
# KEEP=1 keeps the temp dir (database, server log) for a look afterwards.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
agt="$build/core/cli/agt"
server="$build/server/agt-server"
agtctl="$build/client/agtctl"
for tool in "$agt" "$server" "$agtctl"; do
  if [ ! -x "$tool" ]; then
    echo "main-job: $tool is missing; build first:" >&2
    echo "  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release &&" \
         "cmake --build build -j2 --target agt agt-server agtctl" >&2
    exit 2
  fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/agt-main-job.XXXXXX")"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    local status=0
    wait "$server_pid" || status=$?
    server_pid=""
    return "$status"
  fi
}
cleanup() {
  stop_server || true
  if [ "${KEEP:-0}" = "1" ]; then
    echo "main-job: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }

section "agt-server on an embedded SQLite file ($work/agt.db)"
"$server" --listen 127.0.0.1:0 --db "$work/agt.db" --privacy-budget 220 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
address=""
for _ in $(seq 1 300); do
  address="$(sed -n 's/^listening on //p' "$work/server.out")"
  [ -n "$address" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "main-job: agt-server exited before listening:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "main-job: agt-server did not print 'listening on' within 30 s" >&2
  exit 1
fi
export AGT_SERVER="$address"
echo "listening on $address"
"$agtctl" health

section "half-moons: 3530 rows, noise 0.1, seed 0 (3000 to train, 530 held out)"
"$agt" generate moons --n 3530 --noise 0.1 --seed 0 --out "$work/moons.csv"
head -n 3001 "$work/moons.csv" >"$work/moons_train.csv"
{ head -n 1 "$work/moons.csv"; tail -n +3002 "$work/moons.csv"; } >"$work/moons_test.csv"
train_set="$("$agtctl" dataset upload "$work/moons_train.csv" --name half-moons-train -q)"
test_set="$("$agtctl" dataset upload "$work/moons_test.csv" --name half-moons-test -q)"
"$agtctl" dataset list

section "certified training job (removal of up to n rows per batch)"
# The agt.v1.TrainingJobSpec of examples/moons_unlearning.json: cubic features
# of 2 inputs = 9 model inputs, one dense layer, logistic loss.
cat >"$work/moons_unlearning.job.json" <<'EOF'
{
  "name": "half-moons, cubic features, logistic regression, unlearning",
  "polynomial_degree": 3,
  "architecture": {"layers": [{"dense": {"in": 9, "out": 1}}]},
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 1000,
  "epochs": 4,
  "optimizer": {"learning_rate": 2.0, "lr_decay": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}, {"n": 2}, {"n": 5}, {"n": 10}, {"n": 20}],
  "seed": 0
}
EOF
"$agtctl" train "$work/moons_unlearning.job.json" --dataset "$train_set" --wait \
  | tee "$work/train.out"
model="$(sed -n 's/^trained model: *//p' "$work/train.out")"
if [ -z "$model" ]; then
  echo "main-job: the job produced no model" >&2
  exit 1
fi

section "model $model"
"$agtctl" model get "$model"

section "certificates for examples/moons_queries.csv"
"$agtctl" certify "$model" "$root/examples/moons_queries.csv" --labels

section "certified accuracy on the 530 held-out rows"
"$agtctl" certify "$model" --dataset "$test_set"

section "unlearning: deletion requests against $model (paper section 10.1)"
cut -d, -f1,2 "$root/examples/moons_queries.csv" >"$work/moons_queries_x.csv"
"$agtctl" unlearn request "$model" 17 42 1234
"$agtctl" unlearn check "$model" "$work/moons_queries_x.csv"
"$agtctl" unlearn status "$model"
"$agtctl" unlearn ledger "$model"

section "private prediction: blobs, 6-128-1 network, substitution budgets (paper section 10.2)"
# As in the paper's Fig. 13 (left): 3000 blobs in 6 dimensions, 2400 to train
# in one full batch, clamp clipping; certified against the substitution of up
# to n = 5, 10, 20, 40 rows.
"$agt" generate blobs --n 3000 --dim 6 --classes 2 --stddev 1.0 --center-box 2 --seed 7 \
  --out "$work/blobs.csv"
head -n 2401 "$work/blobs.csv" >"$work/blobs_train.csv"
{ head -n 1 "$work/blobs.csv"; tail -n +2402 "$work/blobs.csv"; } >"$work/blobs_test.csv"
blobs_set="$("$agtctl" dataset upload "$work/blobs_train.csv" --name blobs-train -q)"
cat >"$work/blobs_private.job.json" <<'EOF'
{
  "name": "blobs, 6-128-1, substitution (private prediction)",
  "hidden_widths": [128],
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 2400,
  "epochs": 4,
  "optimizer": {"learning_rate": 1.0, "lr_decay": 0.6},
  "clip_gamma": 0.06,
  "perturbation": {"kind": "PERTURBATION_KIND_SUBSTITUTION"},
  "budgets": [{"n": 5}, {"n": 10}, {"n": 20}, {"n": 40}],
  "seed": 0
}
EOF
"$agtctl" train "$work/blobs_private.job.json" --dataset "$blobs_set" --wait \
  | tee "$work/train_private.out"
private_model="$(sed -n 's/^trained model: *//p' "$work/train_private.out")"
if [ -z "$private_model" ]; then
  echo "main-job: the private-prediction job produced no model" >&2
  exit 1
fi
# Features only (the held-out labels are kept to score the releases below).
head -n 11 "$work/blobs_test.csv" | cut -d, -f1-6 >"$work/blobs_queries.csv"
"$agtctl" predict "$private_model" "$work/blobs_queries.csv" --private --epsilon 1

section "private labels vs true labels on 100 held-out rows, epsilon 1 per label"
{ head -n 1 "$work/blobs_test.csv"; sed -n '12,111p' "$work/blobs_test.csv"; } \
  | cut -d, -f1-6 >"$work/blobs_scored.csv"
sed -n '12,111p' "$work/blobs_test.csv" | cut -d, -f7 >"$work/blobs_scored_labels.txt"
for mechanism in smooth laplace; do
  "$agtctl" predict "$private_model" "$work/blobs_scored.csv" --private --epsilon 1 \
    --mechanism "$mechanism" -q >"$work/released_$mechanism.txt"
  correct="$(paste -d' ' "$work/released_$mechanism.txt" "$work/blobs_scored_labels.txt" \
    | awk '$1 == $2 { c++ } END { print c + 0 }')"
  printf '%-8s %3d/100 released labels correct\n' "$mechanism" "$correct"
done
"$agtctl" budget "$private_model"
echo "(a request past the budget is refused and spends nothing:)"
if "$agtctl" predict "$private_model" "$work/blobs_scored.csv" --private --epsilon 1; then
  echo "main-job: a request past the privacy budget was served" >&2
  exit 1
fi

section "stopping agt-server (SIGTERM)"
if stop_server; then
  echo "agt-server stopped cleanly"
else
  echo "main-job: agt-server exited with an error; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
