# Sourced by scripts/setup and scripts/fetch-linux: the Debian archive this
# machine's own apt already uses. porwatch writes no mirror host name of its
# own; it reads /etc/apt/sources.list and sources.list.d/ (one-line "deb URI
# SUITE ..." and deb822 "URIs:" forms).

# apt_source_uris: every archive URI of the machine's apt sources, one a line.
apt_source_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        sed -n -E \
            -e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([a-z+]+:\/\/[^[:space:]]+).*/\2/p' \
            -e 's/^[[:space:]]*URIs:[[:space:]]*(.*)$/\1/p' "$f" | tr ' ' '\n'
    done | sed -e 's/[[:space:]]//g' -e '/^$/d'
}

# debian_archive_uri: the main archive (a URI ending in /debian), or nothing
# (never a failure: callers run under set -e -o pipefail, and a fresh
# debootstrap has no security source, for one).
debian_archive_uri() {
    { apt_source_uris | grep -E '^[a-z+]+://[^[:space:]]+/debian/?$' | sed 's:/$::' | head -n1; } || true
}

# debian_security_uri: the security archive (ending in /debian-security), or nothing.
debian_security_uri() {
    { apt_source_uris | grep -E '^[a-z+]+://[^[:space:]]+/debian-security/?$' | sed 's:/$::' | head -n1; } || true
}
