#!/usr/bin/env bash
# What `make` needs from the machine before it builds .venv (README "Prerequisites"): one line per missing piece,
# naming the Debian/Ubuntu package, and a non-zero exit. Usage: check_prerequisites.sh PYTHON
python=${1:-python3}
missing=0

fail() {
    echo "make: $1" >&2
    missing=1
}

if [[ $(uname -m) != x86_64 ]]; then
    fail "the PyPI ROS 2 wheels are x86_64 only, this is $(uname -m): on an ARM robot build in a ROS 2 workspace (README \"On a robot\")"
fi
if ! version=$("$python" -c 'import platform; print(platform.python_version())' 2> /dev/null); then
    fail "cannot run $python: sudo apt-get install python3, or make BASE_PYTHON=/path/to/python3.X (3.11-3.14)"
elif ! "$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 14))'; then
    fail "$python is Python $version, the pinned wheels need 3.11-3.14: make BASE_PYTHON=/path/to/python3.X"
else
    if ! "$python" -c 'import ensurepip, venv' 2> /dev/null; then
        fail "$python cannot create a venv: sudo apt-get install python3-venv"
    fi
    if [[ ! -f $("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h ]]; then
        fail "no Python headers for $python (the messages' Python extension needs them): sudo apt-get install python3-dev"
    fi
fi
if ! command -v cc > /dev/null || ! command -v c++ > /dev/null; then
    fail "no C/C++ compiler (cc, c++) to build the messages: sudo apt-get install build-essential"
fi
exit $missing
