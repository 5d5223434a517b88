#!/usr/bin/env bash
# Run the whole test suite in the project's venv (created on first use).
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pytest -q "$@"
