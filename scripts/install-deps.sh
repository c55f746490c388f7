#!/usr/bin/env bash
# Installs what the tests and the demo need, idempotently: the Debian
# packages of the servers the end-to-end tests run (only those missing, so
# apt-get update runs only when something is missing), staticcheck, and
# the Go modules. Run as root or with sudo available. `make deps` runs it.
set -euo pipefail

APT_PACKAGES=(prosody prosody-modules ngircd inspircd atheme-services postgresql biboumi python3-slixmpp postfix dovecot-core dovecot-imapd dovecot-lmtpd dovecot-submissiond swaks netcat-openbsd)
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
GO="${GO:-go}"

# installed PACKAGE: dpkg says it is installed (Debian), or, without dpkg,
# its main binary is on PATH.
installed() {
	local pkg=$1
	if command -v dpkg-query >/dev/null 2>&1; then
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'
		return
	fi
	case $pkg in
	postgresql) command -v postgres >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 ;;
	*) command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] ;;
	esac
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
		exit 1
	fi
	sudo=()
	if [ "$(id -u)" != 0 ]; then
		sudo=(sudo)
	fi
	echo "install-deps: installing ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
	echo "install-deps: ${APT_PACKAGES[*]} already installed"
fi

gobin=$("$GO" env GOBIN)
if [ -z "$gobin" ]; then
	gobin="$("$GO" env GOPATH)/bin"
fi
if "$gobin/staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
	echo "install-deps: staticcheck ${STATICCHECK_VERSION} already installed"
else
	echo "install-deps: go install honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
	"$GO" install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi

"$GO" mod download
