# Sourced by scripts/test.sh and scripts/run.sh: `apt_install PKG...` installs
# Debian packages (apt-get needs root: through sudo when we are not root and
# it is available), refreshing the package lists once, and only when
# something is missing.
export DEBIAN_FRONTEND=noninteractive

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo env DEBIAN_FRONTEND=noninteractive)
fi

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        "${SUDO[@]}" apt-get update -qq
        apt_updated=1
    fi
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@"
}
