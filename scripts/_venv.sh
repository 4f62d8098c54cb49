# Shared by scripts/serve and scripts/test: make .venv and install the project into it.
# Re-installs only when pyproject.toml or the requested extras change.
# Usage: source scripts/_venv.sh; ensure_venv "" | ensure_venv "[test]"
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if ! command -v "$py" >/dev/null 2>&1; then
    echo "error: $py not found. Install Python 3.11 or newer (or set PYTHON=/path/to/python3)." >&2
    exit 1
  fi
  if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "error: Walkthrough needs Python 3.11 or newer; $py is $("$py" --version 2>&1)." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> Creating .venv"
    "$py" -m venv .venv || {
      echo "error: could not create a virtual environment. On Debian/Ubuntu: apt-get install python3-venv" >&2
      exit 1
    }
  fi
  local stamp=".venv/.walkthrough-installed"
  local want
  want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)${extras}"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> Installing Walkthrough${extras} into .venv (log: .venv/install.log)"
    # The build backend's notices (editable installs) go to the log; on failure it is shown.
    if ! {
      .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip &&
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    } > .venv/install.log 2>&1; then
      cat .venv/install.log >&2
      echo "error: installing Walkthrough${extras} failed (above, and in .venv/install.log)." >&2
      exit 1
    fi
    echo "$want" > "$stamp"
  fi
}
