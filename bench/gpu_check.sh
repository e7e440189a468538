#!/usr/bin/env bash
# The GPU path's check, in one go, on a GPU host with this checkout and its venv (make install):
#   1. the driver and the GPU (nvidia-smi);
#   2. the CUDA builds in the venv: torch==2.13.0 (CUDA) and tensorflow[and-cuda]==2.21.0,
#      installed when missing. That needs the package index, or a folder of wheels
#      (PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels); without either it stops and says so;
#   3. bench/gpu_check.py: CUDA start-up per spare, the sandbox's view of the GPU, the
#      template's open files, run latency with ready spares, GPU memory bombs against the
#      per-run cap, the devices lesson end to end;
#   4. a remote worker, when `sidebyside worker` and redis-server are there: one run
#      through the queue, with the device and worker it names.
# Rows: measure, value, note. --dry-run: a CPU host; installs nothing, skips what needs CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
PY="${VENV:-.venv}/bin/python"
row() { printf '%-50s%18s  %s\n' "$1" "$2" "${3:-}"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

[[ -x "$PY" ]] || { echo "no venv at ${PY%/bin/python}: run make install first (or set VENV)"; exit 2; }

# 1. the GPU
GPU=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    GPU=1
    row "GPU (nvidia-smi)" "$(nvidia-smi -L | wc -l) found" \
        "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
elif [[ $DRY == 1 ]]; then
    row "GPU (nvidia-smi)" "none" "dry run: CUDA-only rows are skipped"
else
    echo "no GPU found by nvidia-smi: install the NVIDIA driver, or run with --dry-run"; exit 2
fi

# 2. the CUDA builds
builds() {
    torch_b=$("$PY" -c "import torch; print(torch.__version__, torch.version.cuda or 'cpu')" 2>/dev/null)
    tf_b=$(TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c "import tensorflow as tf
i = tf.sysconfig.get_build_info()
print(tf.__version__, i.get('cuda_version', 'cpu') if i.get('is_cuda_build') else 'cpu')" 2>/dev/null)
}
builds
cuda_ok() { [[ "$torch_b" == 2.13.0* && "$torch_b" != *" cpu" && "$tf_b" == "2.21.0 "* && "$tf_b" != *" cpu" ]]; }
if ! cuda_ok; then
    if [[ $DRY == 1 ]]; then
        row "CUDA builds" "not installed" "a GPU host would install torch==2.13.0 (CUDA), tensorflow[and-cuda]==2.21.0"
    else
        echo "installing the CUDA builds (torch: $torch_b; tensorflow: $tf_b)"
        wanted=(torch==2.13.0 'tensorflow[and-cuda]==2.21.0')
        # Resolve first, touching nothing: without the index the venv keeps its CPU builds.
        if ! "$PY" -m pip install -q --dry-run --ignore-installed "${wanted[@]}" >/dev/null; then
            echo "could not reach the CUDA builds: this needs the package index (network), or"
            echo "a folder of wheels: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels $0"
            exit 3
        fi
        "$PY" -m pip uninstall -y -q tensorflow-cpu torch
        "$PY" -m pip install -q "${wanted[@]}" || { echo "installing the CUDA builds failed"; exit 3; }
        builds
        cuda_ok || { echo "still no CUDA builds (torch: $torch_b; tensorflow: $tf_b)"; exit 3; }
    fi
fi
row "torch (version, CUDA)" "${torch_b:-missing}"
row "tensorflow (version, CUDA)" "${tf_b:-missing}"

# 3. the sandbox and its pool, measured
ARGS=()
[[ $DRY == 1 ]] && ARGS+=(--dry-run)
if ! command -v bwrap >/dev/null; then
    row "bubblewrap" "missing" "apt-get install bubblewrap; measuring without the sandbox"
    ARGS+=(--insecure)
fi
"$PY" bench/gpu_check.py "${ARGS[@]}" 2>/tmp/gpu_check.err \
    || row "bench/gpu_check.py" "failed" "its errors: /tmp/gpu_check.err"

# 4. a remote worker
if ! "$PY" -m app.cli worker --help >/dev/null 2>&1; then
    row "remote worker" "skipped" "no 'sidebyside worker' in this checkout"
elif ! command -v redis-server >/dev/null; then
    row "remote worker" "skipped" "needs redis-server (apt-get install redis-server)"
else
    device=$([[ $GPU == 1 ]] && echo gpu || echo cpu)
    # Ports of our own: a Redis or server already on this machine must not meet ours.
    free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    rport=$(free_port)
    web="http://127.0.0.1:$(free_port)"
    broker="redis://127.0.0.1:$rport/0"
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
    export SIDEBYSIDE_WORKER_SECRET=gpu-check-web-and-worker-secret
    SIDEBYSIDE_BROKER_URL=$broker "$PY" -m app.cli worker --device "$device" --name "gpu-check@$device" \
        >/tmp/gpu_check_worker.log 2>&1 & pids+=($!)
    SIDEBYSIDE_BROKER_URL=$broker "$PY" -m app.cli serve --port "${web##*:}" >/tmp/gpu_check_web.log 2>&1 & pids+=($!)
    SECONDS=0
    for _ in $(seq 600); do
        curl -sf "$web/api/health" 2>/dev/null | grep -q "gpu-check@$device" && break
        sleep 0.5
    done
    row "worker registered ($device)" "${SECONDS}s"
    body="{\"framework\": \"pytorch\", \"device\": \"$device\", \"code\": \"import torch\\nd = 'cuda' if torch.cuda.is_available() else 'cpu'\\nprint(torch.ones(2, device=d).sum().item(), d)\"}"
    for _ in 1 2 3; do
        answer=$(curl -s -w ' %{time_total}' -H 'content-type: application/json' -d "$body" "$web/api/runs")
    done
    row "a run through the queue (3rd, total)" "$(awk -v s="${answer##* }" 'BEGIN {printf "%.1fms", s * 1000}')" \
        "$(echo "${answer% *}" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print(r.get("status"), r.get("stdout","").strip(), r.get("device"), r.get("worker"))' 2>/dev/null)"
fi
[[ $GPU == 1 ]] || echo "not run on a GPU: no figure above says anything about one"
