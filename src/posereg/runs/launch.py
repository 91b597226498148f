"""Which process of a launch this is, and how the processes of one launch recognise each other.

Launchers: a plain process; Lightning's own DDP launcher (rank 0 starts the other local ranks as child
processes with LOCAL_RANK set); torchrun (every rank starts at once with RANK, TORCHELASTIC_RUN_ID,
MASTER_PORT); SLURM (every task starts at once with SLURM_PROCID, SLURM_JOB_ID). Only global rank 0 runs
the run lifecycle; the other ranks wait until status.json carries rank 0's launch token and follow its
decision (resume from the same checkpoint). The processes a posereg-sweep starts know its pid (SWEEP_PID_ENV).
"""

from __future__ import annotations

import os

# posereg-sweep tells the processes it starts who it is: its pid and grid folder (posereg.training.watchdog)
SWEEP_PID_ENV = "POSEREG_SWEEP_PID"
SWEEP_GRID_ENV = "POSEREG_SWEEP_GRID"


def _slurm_tasks() -> bool:
    """True inside a SLURM step that started several tasks (one per rank)."""
    return "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1


def is_rank_zero() -> bool:
    """True for the process that owns the run directory (global rank 0, or a single process)."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    if _slurm_tasks():
        return int(env["SLURM_PROCID"]) == 0
    return int(env.get("LOCAL_RANK", "0")) == 0 and int(env.get("NODE_RANK", "0")) == 0


def launch_token() -> str:
    """An identifier of this launch that every rank of it computes identically."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:
        return (f"torchrun:{env['TORCHELASTIC_RUN_ID']}:{env.get('TORCHELASTIC_RESTART_COUNT', '0')}:"
                f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}")
    if _slurm_tasks():
        return f"slurm:{env.get('SLURM_JOB_ID')}:{env.get('SLURM_STEP_ID', '')}:{env.get('SLURM_RESTART_COUNT', '0')}"
    if "LOCAL_RANK" in env and int(env["LOCAL_RANK"]) > 0:
        return f"pid:{os.getppid()}"  # a child started by Lightning's launcher: its parent is rank 0
    return f"pid:{os.getpid()}"


def scheduler_job() -> str | None:
    """The scheduler job this process belongs to (kept across a SLURM requeue), or None."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return f"slurm:{job}" if job else None


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes for this job (array jobs: `<array job>_<task>`), None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def requeue_slurm_job() -> tuple[str, int]:
    """`scontrol requeue <job>`: (job id, exit code of scontrol; 127 when scontrol is not on PATH)."""
    import subprocess

    job = slurm_job_id()
    if job is None:
        return "", 1
    try:
        return job, subprocess.run(["scontrol", "requeue", job], check=False, timeout=60).returncode
    except FileNotFoundError:
        return job, 127

