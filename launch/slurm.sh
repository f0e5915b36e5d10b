#!/usr/bin/env bash
# rlft on N machines under SLURM: one task per machine, each starting accelerate with its own machine rank.
#   sbatch --nodes 4 launch/slurm.sh rlft/grpo.py recipes/gpu/qwen2.5-1.5b-gsm8k.yaml [--key value ...]
# GPUS_PER_NODE (default 8) processes per machine; the first machine of the allocation is the rendezvous host.
#SBATCH --job-name=rlft
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
set -euo pipefail
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NODES=${SLURM_NNODES:?run this under sbatch or srun (SLURM_NNODES is not set)}
MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)  # sed reads all: no SIGPIPE under pipefail
PORT=${MAIN_PORT:-29500}
CONFIG=${RLFT_LAUNCH_CONFIG:-launch/multinode.yaml}
# SLURM_NODEID differs per task, so it is read inside each task's shell, not here.
srun --ntasks-per-node=1 bash -c 'exec accelerate launch --config_file "$0" --num_machines "$1" \
    --num_processes "$(( $1 * $2 ))" --machine_rank "$SLURM_NODEID" --main_process_ip "$3" \
    --main_process_port "$4" "${@:5}"' "$CONFIG" "$NODES" "$GPUS_PER_NODE" "$MAIN_IP" "$PORT" "$@"
