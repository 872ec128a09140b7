# Sourced by the .ci scripts: where the project's own tools go, and one way to install each kind.
# Everything a script needs it installs itself and then calls by the path it put it at, never a guess
# about what is on PATH: Debian packages at their package paths (checked after the install), the
# Python scripts' interpreter in a virtual environment of our own with NumPy from PyPI, cargo tools
# under target/ci/bin. A step that cannot install what it needs stops the run with one line saying
# what was missing and what was tried.

CI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_TOOLS="$CI_ROOT/target/ci"

ci_fail() {
  echo "convgrad ci: $*" >&2
  exit 1
}

# ci_apt WHY PACKAGE...: installs Debian packages (as root, or through sudo).
ci_apt() {
  local why=$1 log sudo=""
  shift
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || ci_fail "$why needs the Debian packages '$*': not root and no sudo to install them"
    sudo="sudo"
  fi
  echo "convgrad: installing $* ($why)..." >&2
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"; } >"$log" 2>&1; then
    ci_fail "$why: 'apt-get install $*' failed: $(grep -v '^debconf' "$log" | tail -1) (log: $log)"
  fi
}

# ci_need_file PATH WHAT: after an install, the file it should have put there.
ci_need_file() {
  [ -e "$1" ] || ci_fail "$2: installed, but $1 is still missing"
}

# ci_python: prints the interpreter of the project's own virtual environment (target/ci/python), with
# NumPy from PyPI, making it first if needed. The python3 on PATH only serves to make it: whatever that
# interpreter has installed (or lacks) does not matter.
ci_python() {
  local venv="$CI_TOOLS/python" log made=""
  if "$venv/bin/python" -c 'import numpy' >/dev/null 2>&1; then
    echo "$venv/bin/python"
    return
  fi
  log=$(mktemp)
  for base in python3 /usr/bin/python3; do
    rm -rf "$venv"
    if command -v "$base" >/dev/null && "$base" -m venv "$venv" >>"$log" 2>&1; then
      made=$base
      break
    fi
  done
  if [ -z "$made" ]; then
    # Debian's own python3 makes virtual environments only with python3-venv (ensurepip).
    ci_apt "a Python virtual environment for scripts/numpy_check.py" python3-venv
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv" >>"$log" 2>&1 ||
      ci_fail "could not make a Python virtual environment at $venv with python3 or /usr/bin/python3 (log: $log)"
  fi
  # Wheels only: a source build of NumPy would need compilers and minutes, and fail obscurely.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: 'numpy>=1.26,<3' >>"$log" 2>&1 ||
    ci_fail "could not install NumPy from PyPI into $venv: $(tail -1 "$log") (log: $log)"
  "$venv/bin/python" -c 'import numpy' >>"$log" 2>&1 || ci_fail "NumPy installed into $venv but does not import (log: $log)"
  echo "$venv/bin/python"
}
