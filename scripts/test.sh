#!/usr/bin/env bash
# Run the whole test suite in the project's venv (created on first use), one pytest-xdist
# worker per core with one math thread each (whole test files per worker, so a module's
# fixtures are built once). The fault table (--fault-table) is collected in one process,
# and -n N given here wins.
# (GNU nproc honours OMP_NUM_THREADS, so count the cores without it)
WORKERS="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
case " $* " in
  *" --fault-table"*|*" -n "*|*" -n="*|*" -p no:xdist "*) ;;
  *) set -- -n "$WORKERS" --dist loadfile "$@" ;;
esac
python -m pytest -q "$@"
