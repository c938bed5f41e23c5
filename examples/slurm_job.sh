#!/bin/bash
# Distributed training under Slurm: 2 nodes x 4 ranks, 8 threads per rank (rank 0, the parameter
# server, uses its threads only to evaluate). Submit with: sbatch examples/slurm_job.sh TRAIN TEST
#SBATCH --job-name=asyncopt
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=00:30:00
#SBATCH --output=asyncopt-%j.out
set -euo pipefail

# One OpenMP thread per core given to the rank, pinned next to each other: Hogwild! threads share
# the model's cache lines, so spreading them over sockets costs more than it gives.
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK}"
export OMP_PROC_BIND=close
export OMP_PLACES=cores

# asyncopt installed against the site's MPI (README, "On a cluster"): mpi4py built with the
# cluster's mpicc, no MPICH wheel. srun starts every rank; they need not start at the same time.
srun --cpu-bind=cores python examples/mpi_train.py "$@"
