# Sourced by scripts/test and scripts/demo: go to the repository root, make sure
# .venv exists with queuectl installed, and put .venv/bin first on PATH.
# shellcheck shell=bash

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." || return

# ensure_venv EXTRAS: create .venv if missing; (re)install queuectl with EXTRAS
# (e.g. "dev,postgres", or "" for none) unless an install for the same
# pyproject.toml is already there. The stamp records what was installed.
#
# The editable install is setuptools' "compat" mode: a plain path in a .pth file.
# The default mode installs an import hook whose module imports pathlib, urllib
# and more at every interpreter start-up: about 13 ms on each python and queuectl
# process of the venv (see docs/DECISIONS.md).
ensure_venv() {
    local extras=$1 stamp=.venv/.queuectl-installed python=${PYTHON:-python3}
    local mode=compat
    if [[ ! -x .venv/bin/python ]]; then
        if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "Error: queuectl needs Python 3.10 or newer as '$python' (set PYTHON=...)" >&2
            return 1
        fi
        echo "Creating .venv with $("$python" --version)..." >&2
        "$python" -m venv .venv || {
            echo "Error: could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    if [[ -f $stamp ]] && tail -n +3 "$stamp" | cmp -s - pyproject.toml &&
        [[ $(sed -n 2p "$stamp") == "editable_mode: $mode" ]] &&
        { [[ -z $extras ]] || [[ $(head -n 1 "$stamp") == "extras: $extras" ]]; }; then
        :
    else
        echo "Installing queuectl${extras:+ with [$extras]} into .venv..." >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            --config-settings editable_mode=$mode -e ".${extras:+[$extras]}"
        { echo "extras: $extras"; echo "editable_mode: $mode"; cat pyproject.toml; } >"$stamp"
    fi
    PATH="$PWD/.venv/bin:$PATH"
    export PATH
}
