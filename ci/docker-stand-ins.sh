#!/usr/bin/env bash
# Make local stand-ins for the public base images the Dockerfile names
# (`rust:1-bookworm` and `debian:bookworm-slim`) when the Docker engine lacks
# them and cannot pull them (CI machines without a registry).
#
# Idempotent: a tag that `docker image inspect` already finds is left alone, so
# the images themselves are the cache between runs. `--force` rebuilds both.
#
#   debian:bookworm-slim  debootstrap --variant=minbase of bookworm from this
#                         machine's Debian mirror, with redis-server and
#                         ca-certificates preinstalled, this machine's CA bundle
#                         and apt sources/proxy settings.
#   rust:1-bookworm       the same rootfs + gcc, libc6-dev and this machine's
#                         active Rust toolchain (bin/ + lib/) in /usr/local/rust,
#                         plus cargo's registry settings if the machine has any.
#
# Environment:
#   SELFHEAL_DEBIAN_MIRROR   mirror URL (default: first bookworm entry of the apt sources)
#   SELFHEAL_STANDIN_WORKDIR parent dir for the temporary rootfs (default: $TMPDIR or /tmp)
#
# See docs/container.md.
set -euo pipefail

RUNTIME_TAG=debian:bookworm-slim
BUILDER_TAG=rust:1-bookworm
SUITE=bookworm
COMMENT="selfheal stand-in (ci/docker-stand-ins.sh)"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
PATH_IN_IMAGE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUST_PREFIX=/usr/local/rust
CARGO_HOME_IN_IMAGE=/usr/local/cargo

log() { printf '[stand-ins] %s\n' "$*" >&2; }
die() { printf '[stand-ins] error: %s\n' "$*" >&2; exit 1; }

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine unreachable (is dockerd running? are you allowed to use it?)"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

need_runtime=1
need_builder=1
if [[ $force -eq 0 ]]; then
    have_image "$RUNTIME_TAG" && need_runtime=0
    have_image "$BUILDER_TAG" && need_builder=0
fi
if [[ $need_runtime -eq 0 && $need_builder -eq 0 ]]; then
    log "$RUNTIME_TAG and $BUILDER_TAG present; nothing to do (--force rebuilds)"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot)"
[[ -r $HOST_CA ]] || die "$HOST_CA not readable"
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get install -y --no-install-recommends debootstrap >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends debootstrap >/dev/null; } ||
        die "could not install debootstrap"
fi

# --- the Debian mirror this machine uses -----------------------------------
apt_source_files() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && printf '%s\n' "$f"
    done
    return 0
}

find_mirror() {
    local f
    while read -r f; do
        case "$f" in
            *.sources)
                # deb822: a stanza with Suites: bookworm and its URIs:
                awk -v suite="$SUITE" '
                    BEGIN { RS = ""; FS = "\n" }
                    {
                        uri = ""; ok = 0; deb = 0
                        for (i = 1; i <= NF; i++) {
                            if ($i ~ /^[Tt]ypes:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
                            if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
                            if ($i ~ /^Suites:/ && $i ~ ("[ \t]" suite "([ \t]|$)")) ok = 1
                            if ($i ~ /^Enabled:[ \t]*no/) ok = 0
                        }
                        if (deb && ok && uri != "") { print uri; exit }
                    }' "$f"
                ;;
            *)
                awk -v suite="$SUITE" '
                    $1 == "deb" {
                        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                        if ($(i + 1) == suite) { print $i; exit }
                    }' "$f"
                ;;
        esac
    done < <(apt_source_files) | head -n1
}

MIRROR=${SELFHEAL_DEBIAN_MIRROR:-$(find_mirror)}
[[ -n $MIRROR ]] || die "no '$SUITE' Debian mirror found in the apt sources; set SELFHEAL_DEBIAN_MIRROR"
log "Debian mirror: $MIRROR"

# --- work dir, cleaned up on any exit ---------------------------------------
WORK=$(mktemp -d "${SELFHEAL_STANDIN_WORKDIR:-${TMPDIR:-/tmp}}/selfheal-stand-ins.XXXXXX")
ROOT=$WORK/rootfs
cleanup() {
    local rc=$?
    if [[ -d $ROOT/proc ]] && mountpoint -q "$ROOT/proc"; then umount "$ROOT/proc" || true; fi
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# --- rootfs ----------------------------------------------------------------
start=$SECONDS
log "debootstrap $SUITE (minbase + redis-server, ca-certificates) into $ROOT"
debootstrap --variant=minbase --include=redis-server,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (full log above, last 30 lines)"
}
log "debootstrap done in $((SECONDS - start))s"

# The machine's CA bundle (TLS to the registries is intercepted by a CA only it
# trusts). Also as a local CA so that update-ca-certificates inside a build
# keeps it in the regenerated bundle.
install -m 0644 "$HOST_CA" "$ROOT/etc/ssl/certs/ca-certificates.crt"
install -D -m 0644 "$HOST_CA" "$ROOT/usr/local/share/ca-certificates/selfheal-host-bundle.crt"

# The machine's apt sources (enabled files only) and proxy / validity settings,
# so apt-get inside image builds reaches the same archive the same way.
copied_sources=0
while read -r f; do
    case "$f" in
        /etc/apt/sources.list) dest=$ROOT/etc/apt/sources.list ;;
        *) dest=$ROOT$f ;;
    esac
    # skip files whose packages need keyrings the rootfs does not have
    missing=0
    while read -r key; do
        [[ -z $key ]] && continue
        if [[ ! -e $ROOT$key ]]; then
            if [[ $key == /usr/share/keyrings/debian-* && -r $key ]]; then
                install -D -m 0644 "$key" "$ROOT$key"
            else
                missing=1
            fi
        fi
    done < <(grep -ohE '(Signed-By:[[:space:]]*|signed-by=)/[^] ]+' "$f" | sed -E 's/^(Signed-By:[[:space:]]*|signed-by=)//')
    if [[ $missing -eq 1 ]]; then
        log "not copying $f (its keyring is not in the rootfs)"
        continue
    fi
    if grep -qE '^[[:space:]]*[^#[:space:]]' "$f"; then
        install -D -m 0644 "$f" "$dest"
        copied_sources=1
    fi
done < <(apt_source_files)
if [[ $copied_sources -eq 1 ]]; then
    # debootstrap's own one-line sources.list would duplicate the copied entries
    if [[ ! -s /etc/apt/sources.list ]] || ! grep -qE '^[[:space:]]*deb' /etc/apt/sources.list; then
        rm -f "$ROOT/etc/apt/sources.list"
    fi
fi
# docker-* are the apt settings the official Debian images carry (no
# translations, gzipped indexes, cleaned caches); copy them when the machine has them.
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    [[ -f $f ]] || continue
    if [[ $(basename "$f") == docker-* ]] || grep -qiE 'Acquire::(https?::)?Proxy|Acquire::https?::Proxy|Check-Valid-Until|Check-Date' "$f"; then
        install -D -m 0644 "$f" "$ROOT$f"
    fi
done

run_in_root() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    chroot "$ROOT" /usr/bin/env -i PATH="$PATH_IN_IMAGE" DEBIAN_FRONTEND=noninteractive \
        LANG=C.UTF-8 HOME=/root "$@"
}

slim_root() {
    umount "$ROOT/proc" 2>/dev/null || true
    rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
        "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/log/*.log \
        "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
        "$ROOT"/tmp/* "$ROOT"/var/tmp/*
    : >"$ROOT/etc/resolv.conf"
    : >"$ROOT/etc/hostname"
}

import_root() { # tag, extra `docker import -c` changes...
    local tag=$1
    shift
    local changes=(-c "ENV PATH=$PATH_IN_IMAGE" -c 'CMD ["bash"]')
    changes+=("$@")
    local old_id old_comment
    old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    old_comment=$(docker image inspect -f '{{.Comment}}' "$tag" 2>/dev/null || true)
    tar --numeric-owner -C "$ROOT" -c . | docker import -m "$COMMENT" "${changes[@]}" - "$tag" >/dev/null
    # --force: drop the previous stand-in (only ours, and only if nothing uses it)
    if [[ -n $old_id && $old_comment == "$COMMENT" ]]; then
        docker image rm "$old_id" >/dev/null 2>&1 || log "kept previous $tag image $old_id (in use)"
    fi
    log "imported $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# The Dockerfile creates redis as 999:999 (like the official redis image) before
# installing redis-server; debootstrap already installed it with the next free
# system ids, so renumber it to match.
# shellcheck disable=SC2016 # expanded by the shell inside the chroot
run_in_root bash -euc '
    u=$(id -u redis); g=$(id -g redis)
    if [ "$u:$g" != 999:999 ]; then
        groupmod -g 999 redis
        usermod -u 999 -g 999 redis
        find / -xdev -uid "$u" -exec chown -h 999 {} +
        find / -xdev -gid "$g" -exec chgrp -h 999 {} +
    fi'

# Bring the rootfs up to date with the copied sources (security updates), so
# that `apt-get install redis-server` in the Dockerfile has nothing to do.
start=$SECONDS
log "apt-get upgrade (security and point-release updates)"
run_in_root apt-get update -qq >/dev/null
run_in_root apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade >"$WORK/upgrade.log" 2>&1 || {
    tail -n 30 "$WORK/upgrade.log" >&2
    die "apt-get upgrade in the rootfs failed"
}
# ca-certificates' trigger regenerates the bundle: put the host's back as is
install -m 0644 "$HOST_CA" "$ROOT/etc/ssl/certs/ca-certificates.crt"
log "upgrade done in $((SECONDS - start))s"

if [[ $need_runtime -eq 1 ]]; then
    slim_root
    import_root "$RUNTIME_TAG"
fi

if [[ $need_builder -eq 1 ]]; then
    start=$SECONDS
    log "builder: apt-get install gcc libc6-dev ca-certificates"
    run_in_root apt-get update -qq >/dev/null
    run_in_root apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends \
        gcc libc6-dev ca-certificates >"$WORK/builder-apt.log" 2>&1 || {
        tail -n 30 "$WORK/builder-apt.log" >&2
        die "apt-get install in the builder rootfs failed"
    }
    # ca-certificates' trigger may have regenerated the bundle: put the host's back
    install -m 0644 "$HOST_CA" "$ROOT/etc/ssl/certs/ca-certificates.crt"

    command -v rustc >/dev/null || die "no Rust toolchain on this machine (rustc not found)"
    sysroot=$(rustc --print sysroot)
    [[ -x $sysroot/bin/cargo && -x $sysroot/bin/rustc ]] || die "toolchain at $sysroot lacks bin/cargo or bin/rustc"
    log "builder: Rust toolchain $(rustc -V | awk '{print $2}') from $sysroot -> $RUST_PREFIX"
    mkdir -p "$ROOT$RUST_PREFIX" "$ROOT$CARGO_HOME_IN_IMAGE"
    cp -a "$sysroot/bin" "$sysroot/lib" "$ROOT$RUST_PREFIX/"
    rm -rf "$ROOT$RUST_PREFIX/lib/rustlib/src" "$ROOT$RUST_PREFIX/lib/rustlib/rustc-src"

    # cargo registry settings (mirrors, CA, proxies) the machine uses, if any
    changes=(-c "ENV PATH=$RUST_PREFIX/bin:$PATH_IN_IMAGE" -c "ENV CARGO_HOME=$CARGO_HOME_IN_IMAGE")
    host_cargo_home=${CARGO_HOME:-$HOME/.cargo}
    for cfg in "$host_cargo_home/config.toml" "$host_cargo_home/config"; do
        if [[ -f $cfg ]]; then
            log "builder: copying cargo config $cfg"
            install -m 0644 "$cfg" "$ROOT$CARGO_HOME_IN_IMAGE/config.toml"
            break
        fi
    done
    while IFS='=' read -r name value; do
        case "$name" in
            CARGO_REGISTRIES_* | CARGO_REGISTRY_* | CARGO_HTTP_* | CARGO_NET_* | CARGO_SOURCE_*)
                [[ $name == CARGO_REGISTRIES_*_TOKEN || $name == CARGO_REGISTRY_TOKEN ]] && continue
                log "builder: ENV $name"
                changes+=(-c "ENV $name=$value")
                ;;
        esac
    done < <(env)
    slim_root
    import_root "$BUILDER_TAG" "${changes[@]}"
    log "builder done in $((SECONDS - start))s"
fi
