#!/usr/bin/env bash
# Patch queue for the QEMU source tree: prepare the working repository,
# apply patches/ to it, export its commits back, and check the series.
#
# Usage: ci/patchq.sh COMMAND
#   prepare         create the working repo (base commit, local fix-ups)
#   apply           apply patches/series on top of the local base
#   export          write both working repos' commits into patches/
#   check-exported  fail if a working repo has work not in patches/
#   check-patches   apply every patch to a clean base, run checkpatch.pl
#   check-builds    build QEMU after each patch of the series
#   submission      write the patches to send, with the sender's identity
#   prepare-master, apply-master, reset-master: the same for the master repo
#   check-master    the set on master: same commits, checkpatch, builds
#   record-forms    write patches/forms.diff: how the set's two forms differ
#   check-forms     fail if the two forms differ otherwise (also in check-patches)
#
# The working repository (QEMU_SRC) has this history:
#   tag qemu-base     pristine upstream v10.2.2 (the submodule's commit, or
#                     the unpacked source tarball)
#   tag series-base   qemu-base plus local build fix-ups (+ds tarball only);
#                     never exported
#   series-base..HEAD the series: standalone upstream-bound patches first,
#                     then backports, then the upstream-bound set
#
# A commit whose message has a "Backported-from:" trailer is a backport and
# is exported to patches/backports/. Upstream-bound commits before the first
# backport are standalone patches, which apply to upstream without the rest
# of the series: patches/standalone/. The upstream-bound commits after the
# backports are the submission set in the product's form (API version 5,
# feature macros): patches/interplugin/.
#
# The master working repository (MASTER_SRC) holds the same set in
# upstream's form:
#   tag master-base    pristine upstream master (MASTER_COMMIT), from the
#                      archive in shared/upstream/
#   master-base..HEAD  the submission set: patches/upstream/, with its
#                      hand-written cover letter (0000-cover-letter.patch)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
: "${QEMU_SRC:=$top/build/qemu-src}"
: "${DOWNLOAD_DIR:=$top/build/downloads}"
: "${QEMU_TARBALL:=}"
PATCHES=$top/patches
SERIES=$PATCHES/series
FIXUPS=$top/ci/ds-tarball-fixups.patch
QEMU_VERSION=10.2.2
QEMU_BASE_COMMIT=f8ed81651e61d9c2166df6121ce2af0f44f06b3e
DEB_VERSION=1:10.2.2+ds-1
DEB_TARBALL=qemu_10.2.2+ds.orig.tar.xz
DEB_SHA256=be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb
STATE=.git/patchq-applied

# The second base: upstream master, where the submission set
# (patches/upstream/) lives in upstream's conventions. A git archive of
# that commit is shipped beside the project, in shared/upstream/.
: "${MASTER_SRC:=$top/build/qemu-master-src}"
: "${MASTER_TARBALL:=$top/../shared/upstream/qemu-ece408818d27.tar.xz}"
MASTER_COMMIT=ece408818d27f745ef1b05fb3cc99a1e7a5bf580
MASTER_VERSION=10.2.50
MASTER_SHA256=7139746be67d2b9ba4bab78559727360d3bc0f22acc32ae28a64b2f155f451e5
# Meson subprojects that master's configure needs and that its archive has
# only as download wraps: taken from the 10.2.2 source, whose wraps name the
# same revisions (checked).
MASTER_SUBPROJECTS="berkeley-softfloat-3 berkeley-testfloat-3 keycodemapdb"

# The queue the commands work on: the product series on 10.2.2 by default,
# the submission set on master after use_master. QEMU_SRC is its working
# repo, BASE the tag its patches apply to, LIST the function listing its
# patches, EXPORT the one writing them, DIRS its directories in patches/.
BASE=series-base
LIST=series_files
EXPORT=export_to
DIRS="standalone backports interplugin"
use_master() {
    PRODUCT_SRC=$QEMU_SRC
    QEMU_SRC=$MASTER_SRC
    BASE=master-base
    LIST=master_files
    EXPORT=export_master_to
    DIRS=upstream
}

die() { echo "patchq: error: $*" >&2; exit 1; }
say() { echo "patchq: $*"; }
git_src() { git -C "$QEMU_SRC" "$@"; }

# The working repo commits as the series' placeholder identity, whatever
# the machine's global one, unless the repo was given one of its own;
# 'make submission' replaces it with the sender's.
ensure_identity() {
    if [ -z "$(git_src config --local user.email || true)" ]; then
        git_src config user.name "QEMU xplugin team"
        git_src config user.email "xplugin@example.org"
    fi
}

series_files() {
    [ -f "$SERIES" ] || return 0
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$SERIES" | grep -v '^$' || true
}

# The submission set on master, in order (its cover letter aside).
master_files() {
    [ -d "$PATCHES/upstream" ] || return 0
    (cd "$PATCHES" && find upstream -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' | sort)
}

# A fingerprint of the queue: the series file (product) and every patch.
series_id() {
    {
        [ "$LIST" = series_files ] && [ -f "$SERIES" ] && cat "$SERIES"
        $LIST | while read -r p; do
            [ -f "$PATCHES/$p" ] || die "patches/series lists $p, which does not exist"
            cat "$PATCHES/$p"
        done
    } | sha256sum | cut -d' ' -f1
}

# --- prepare -----------------------------------------------------------------

# Sets TARBALL to Debian's verified orig tarball, downloading it if needed.
fetch_debian_tarball() {
    local out=$DOWNLOAD_DIR/$DEB_TARBALL
    TARBALL=$out
    if [ -f "$out" ] && echo "$DEB_SHA256  $out" | sha256sum -c --status; then
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: cannot fetch Debian's qemu $DEB_VERSION source; pass QEMU_TARBALL=/path/to/$DEB_TARBALL"
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
          tr ' ' '\n' | grep -E '/debian/?$' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }' \
              /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -E '/debian/?$' | head -n1 || true)
    fi
    [ -n "$uri" ] || die "no Debian archive found in the apt sources; pass QEMU_TARBALL=/path/to/$DEB_TARBALL"
    # A private apt state: the system's sources and lists stay untouched.
    local apt=$DOWNLOAD_DIR/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri sid main" >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/none"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=$(id -un)")
    say "fetching Debian source package qemu $DEB_VERSION (sid deb-src from the machine's apt sources)"
    apt-get "${opts[@]}" -qq update || die "apt-get update for the sid deb-src entry failed"
    (cd "$DOWNLOAD_DIR" && apt-get "${opts[@]}" -qq source --download-only --tar-only "qemu=$DEB_VERSION") ||
        die "apt-get source qemu=$DEB_VERSION failed; pass QEMU_TARBALL=/path/to/$DEB_TARBALL"
    [ -f "$out" ] || die "apt-get source did not produce $DEB_TARBALL"
    echo "$DEB_SHA256  $out" | sha256sum -c --status ||
        die "checksum mismatch for $out: expected sha256 $DEB_SHA256, got $(sha256sum "$out" | cut -d' ' -f1)"
}

# unpack_pristine TARBALL VERSION DIR TAG MESSAGE...: DIR becomes a git
# repo whose one commit (branch work, dated 2000) is TARBALL's tree, tagged
# TAG, with the MESSAGE paragraphs; TARBALL's VERSION must be VERSION.
unpack_pristine() {
    local tarball=$1 want=$2 dir=$3 tag=$4 version m
    local -a msg=()
    shift 4
    for m in "$@"; do msg+=(-m "$m"); done
    rm -rf "$dir" && mkdir -p "$dir"
    say "unpacking $tarball"
    tar -xf "$tarball" -C "$dir" --strip-components=1 || die "cannot unpack $tarball"
    version=$(cat "$dir/VERSION" 2>/dev/null || true)
    [ "$version" = "$want" ] || die "$tarball holds QEMU '$version', expected $want"
    git -C "$dir" init -q -b work
    # A detached automatic gc after the big first commit would hold HEAD.lock
    # (reflog expire) while the next commit runs.
    git -C "$dir" config gc.auto 0
    QEMU_SRC=$dir ensure_identity
    git -C "$dir" add -A -f
    GIT_AUTHOR_DATE="2000-01-01T00:00:00+0000" GIT_COMMITTER_DATE="2000-01-01T00:00:00+0000" \
        git -C "$dir" commit -q "${msg[@]}"
    git -C "$dir" tag "$tag"
}

prepare_from_tarball() {
    local tarball=$1
    [ -f "$tarball" ] || die "QEMU tarball $tarball does not exist"
    unpack_pristine "$tarball" "$QEMU_VERSION" "$QEMU_SRC.tmp" qemu-base \
        "QEMU v$QEMU_VERSION (pristine, from $(basename "$tarball"))"
    mv "$QEMU_SRC.tmp" "$QEMU_SRC"
}

prepare_from_submodule() {
    local sub=$top/qemu
    git -C "$sub" cat-file -e "$QEMU_BASE_COMMIT^{commit}" 2>/dev/null ||
        die "submodule qemu/ does not contain commit $QEMU_BASE_COMMIT"
    say "cloning the qemu submodule at $QEMU_BASE_COMMIT"
    git clone -q --no-checkout "$sub" "$QEMU_SRC"
    git_src config gc.auto 0
    git_src checkout -q -b work "$QEMU_BASE_COMMIT"
    git_src tag qemu-base
    ensure_identity
}

cmd_prepare() {
    if [ -d "$QEMU_SRC/.git" ]; then
        git_src rev-parse -q --verify series-base >/dev/null ||
            die "$QEMU_SRC exists but was not prepared by this script; remove it and run make again"
        return 0
    fi
    mkdir -p "$(dirname "$QEMU_SRC")" "$DOWNLOAD_DIR"
    if [ -n "$QEMU_TARBALL" ]; then
        if [ "$(basename "$QEMU_TARBALL")" = "$DEB_TARBALL" ] && [ -f "$QEMU_TARBALL" ]; then
            echo "$DEB_SHA256  $QEMU_TARBALL" | sha256sum -c --status ||
                die "checksum mismatch for $QEMU_TARBALL: expected sha256 $DEB_SHA256"
        fi
        prepare_from_tarball "$QEMU_TARBALL"
    elif git -C "$top/qemu" rev-parse -q --verify HEAD >/dev/null 2>&1 &&
         [ "$(git -C "$top/qemu" rev-parse --show-toplevel)" = "$top/qemu" ]; then
        prepare_from_submodule
    else
        fetch_debian_tarball
        prepare_from_tarball "$TARBALL"
    fi
    # The +ds tarball lacks the firmware blobs the build would unpack.
    if [ ! -e "$QEMU_SRC/pc-bios/edk2-x86_64-code.fd.bz2" ]; then
        say "source lacks firmware blobs: applying local build fix-ups (not part of patches/)"
        git_src apply "$FIXUPS" || die "cannot apply $FIXUPS"
        git_src commit -q -a -m "local: build fix-ups for the blob-free +ds source tarball" \
            -m "Not part of the patch series; see ci/ds-tarball-fixups.patch."
    fi
    git_src tag series-base
    say "prepared $QEMU_SRC (base $(git_src rev-parse --short qemu-base))"
}

# Copies into the tree $1 (master) the meson subprojects it cannot download
# offline, from the 10.2.2 source of the product's working repo, after
# checking that both trees describe them alike: the same .wrap (revision)
# and the same overlay (subprojects/packagefiles/). They are ignored files
# there (master's subprojects/.gitignore), not commits. A tree prepared
# from a release or Debian tarball has them in its pristine commit; one
# prepared from the qemu submodule has only the wraps, and meson may have
# downloaded them into its working tree.
copy_master_subprojects() {
    local dest=$1 sp mode type blob path rel have
    git -C "$PRODUCT_SRC" rev-parse -q --verify qemu-base >/dev/null ||
        die "$PRODUCT_SRC is not prepared ('make qemu-src'): master's subprojects come from its v$QEMU_VERSION source"
    for sp in $MASTER_SUBPROJECTS; do
        [ "$(git -C "$dest" rev-parse -q --verify "master-base:subprojects/$sp.wrap")" = \
          "$(git -C "$PRODUCT_SRC" rev-parse -q --verify "qemu-base:subprojects/$sp.wrap")" ] ||
            die "subprojects/$sp.wrap of master is not v$QEMU_VERSION's: see docs/upstream.md, refreshing the master base"
        # Each file of master's overlay, as v10.2.2 has it: in its own
        # packagefiles/ (a git tree), or applied in the subproject (a
        # release tarball).
        while read -r mode type blob path; do
            rel=${path#subprojects/packagefiles/$sp/}
            have=$(git -C "$PRODUCT_SRC" rev-parse -q --verify "qemu-base:subprojects/packagefiles/$sp/$rel" ||
                   git -C "$PRODUCT_SRC" rev-parse -q --verify "qemu-base:subprojects/$sp/$rel" || true)
            [ "$have" = "$blob" ] ||
                die "$path of master is not v$QEMU_VERSION's: see docs/upstream.md, refreshing the master base"
        done < <(git -C "$dest" ls-tree -r master-base -- "subprojects/packagefiles/$sp")
        rm -rf "${dest:?}/subprojects/$sp"
        if git -C "$PRODUCT_SRC" cat-file -e "qemu-base:subprojects/$sp" 2>/dev/null; then
            git -C "$PRODUCT_SRC" archive qemu-base "subprojects/$sp" | tar -x -C "$dest" ||
                die "cannot copy subprojects/$sp from $PRODUCT_SRC"
        elif [ -f "$PRODUCT_SRC/subprojects/$sp/meson.build" ]; then
            cp -a "$PRODUCT_SRC/subprojects/$sp" "$dest/subprojects/" ||
                die "cannot copy subprojects/$sp from $PRODUCT_SRC"
        else
            die "$PRODUCT_SRC has no subprojects/$sp (a tree from the qemu submodule, never configured?): prepare it from a release or Debian tarball (QEMU_TARBALL=..., or without the submodule), or configure it once with downloads allowed"
        fi
    done
}

# The copies are ignored files: 'git clean -x' or 'git stash -u' in the
# master repo removes them. Put back whatever is missing.
ensure_master_subprojects() {
    local sp
    for sp in $MASTER_SUBPROJECTS; do
        [ -f "$QEMU_SRC/subprojects/$sp/meson.build" ] || {
            say "subprojects/$sp is missing from $QEMU_SRC: copying it again"
            copy_master_subprojects "$QEMU_SRC"
            return
        }
    done
}

# The master working repo: tag master-base is the pristine archive of
# upstream commit MASTER_COMMIT; the submission set goes on top.
cmd_prepare_master() {
    if [ -d "$QEMU_SRC/.git" ]; then
        git_src rev-parse -q --verify master-base >/dev/null ||
            die "$QEMU_SRC exists but was not prepared by this script; remove it and run make again"
        return 0
    fi
    [ -f "$MASTER_TARBALL" ] ||
        die "the archive of upstream master, $MASTER_TARBALL, is missing (it is shipped in shared/upstream/ beside the project; set MASTER_TARBALL to use another copy)"
    echo "$MASTER_SHA256  $MASTER_TARBALL" | sha256sum -c --status ||
        die "checksum mismatch for $MASTER_TARBALL: expected sha256 $MASTER_SHA256, got $(sha256sum "$MASTER_TARBALL" | cut -d' ' -f1)"
    local tmp=$QEMU_SRC.tmp
    unpack_pristine "$MASTER_TARBALL" "$MASTER_VERSION" "$tmp" master-base \
        "QEMU master ${MASTER_COMMIT:0:12} (pristine, from $(basename "$MASTER_TARBALL"))" \
        "upstream commit $MASTER_COMMIT"
    copy_master_subprojects "$tmp"
    mv "$tmp" "$QEMU_SRC"
    say "prepared $QEMU_SRC (upstream master ${MASTER_COMMIT:0:12})"
}

# --- apply -------------------------------------------------------------------

am_series() {
    local repo=$1 p
    while read -r p; do
        if ! git -C "$repo" am -q --keep-cr "$PATCHES/$p" >/dev/null 2>&1; then
            git -C "$repo" am --abort >/dev/null 2>&1 || true
            die "patch $p does not apply (git am failed)"
        fi
    done < <($LIST)
}

record_applied() {
    printf '%s %s\n' "$(series_id)" "$(git_src rev-parse HEAD)" >"$QEMU_SRC/$STATE"
}

cmd_apply() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared; run 'make qemu-src'"
    local want have_id="" have_head="" head
    want=$(series_id)
    [ -f "$QEMU_SRC/$STATE" ] && read -r have_id have_head <"$QEMU_SRC/$STATE"
    # patches/ unchanged since the last apply or export: the working repo,
    # with whatever a developer committed or edited there, is what we build.
    [ "$have_id" = "$want" ] && return 0
    if exported_matches; then
        record_applied
        return 0
    fi
    head=$(git_src rev-parse HEAD)
    if [ -n "$(git_src status --porcelain)" ] ||
       [ "$head" != "${have_head:-$(git_src rev-parse $BASE)}" ]; then
        die "patches/ changed, but $QEMU_SRC has work that is not in patches/.
  Export it first ('make export-patches'), or discard it ('make reset-qemu-src' or 'make reset-master-src')."
    fi
    ensure_identity
    git_src reset -q --hard $BASE
    say "applying $($LIST | wc -l) patch(es) from patches/ to $QEMU_SRC"
    am_series "$QEMU_SRC"
    record_applied
}

cmd_reset() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared"
    git_src am --abort >/dev/null 2>&1 || true
    git_src reset -q --hard $BASE
    git_src clean -q -fdx
    [ "$BASE" != master-base ] || copy_master_subprojects "$QEMU_SRC"
    rm -f "$QEMU_SRC/$STATE"
    cmd_apply
}

# --- export ------------------------------------------------------------------

# Write the working repo's series into directory $1: the series file and
# the standalone/, backports/ and interplugin/ patch directories.
export_to() {
    local out=$1 c phase=standalone
    local -a standalone=() backports=() upstream=()
    mkdir -p "$out/standalone" "$out/backports" "$out/interplugin"
    for c in $(git_src rev-list --reverse series-base..HEAD); do
        if git_src log -1 --format=%B "$c" | grep -q '^Backported-from:'; then
            [ "$phase" != upstream ] ||
                die "backport $(git_src log -1 --format='%h %s' "$c") comes after an upstream-bound commit of the set; reorder (standalone patches, then backports, then the set)"
            phase=backports
            backports+=("$c")
        elif [ "$phase" = standalone ]; then
            standalone+=("$c")
        else
            phase=upstream
            upstream+=("$c")
        fi
    done
    format_group "$out" standalone "${standalone[@]}"
    format_group "$out" backports "${backports[@]}"
    format_group "$out" interplugin "${upstream[@]}"
    {
        echo "# QEMU patch series on v$QEMU_VERSION ($QEMU_BASE_COMMIT)."
        echo "# Generated by 'make export-patches'; 'make' applies it in this order."
        echo
        echo "# Standalone upstream-bound patches: they apply to upstream, without the rest."
        (cd "$out" && find standalone -name '[0-9][0-9][0-9][0-9]-*.patch' | sort)
        echo
        echo "# Backports of upstream QEMU 11.x plugin APIs (not for submission)."
        (cd "$out" && find backports -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' | sort)
        echo
        echo "# Upstream-bound patches: the submission set in this base's form (version 5,"
        echo "# feature macros). patches/upstream/ is the same set on upstream master."
        (cd "$out" && find interplugin -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' | sort)
    } >"$out/series"
}

# The submission set: master-base..HEAD of the master working repo.
export_master_to() {
    local out=$1
    local -a commits
    mkdir -p "$out/upstream"
    mapfile -t commits < <(git_src rev-list --reverse master-base..HEAD)
    format_group "$out" upstream "${commits[@]}"
}

# format_group OUT KIND COMMIT...: format-patch a contiguous run of commits.
format_group() {
    local out=$1 kind=$2
    shift 2
    [ $# -gt 0 ] || return 0
    git_src format-patch -q --zero-commit --no-signature -N --stat=80 \
        -o "$out/$kind" "$1^..${!#}"
}

cmd_export() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared"
    [ -z "$(git_src status --porcelain --untracked-files=no)" ] ||
        die "$QEMU_SRC has uncommitted changes; commit them first"
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    $EXPORT "$tmp"
    local kind
    for kind in $DIRS; do
        # Regenerate the patches; a hand-written 0000 cover letter stays.
        mkdir -p "$PATCHES/$kind"
        find "$PATCHES/$kind" -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' -delete
        find "$tmp/$kind" -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' -exec cp {} "$PATCHES/$kind/" \;
    done
    [ ! -f "$tmp/series" ] || cp "$tmp/series" "$SERIES"
    rm -rf "$tmp"
    trap - EXIT
    record_applied
    say "exported $($LIST | wc -l) patch(es) from $QEMU_SRC to patches/"
}

# True when patches/ equals what export would write from the working repo
# (hand-written cover letters and READMEs aside).
exported_matches() {
    [ -z "$(git_src status --porcelain)" ] || return 1
    local tmp rc=0
    tmp=$(mktemp -d)
    if ! ($EXPORT "$tmp"); then
        rc=1
    else
        local d
        for d in $DIRS; do
            diff -r -q -x '0000-*' -x README.md "$tmp/$d" "$PATCHES/$d" >/dev/null 2>&1 || rc=1
        done
        [ ! -f "$tmp/series" ] || cmp -s "$tmp/series" "$SERIES" || rc=1
    fi
    rm -rf "$tmp"
    return $rc
}

cmd_check_exported() {
    [ -d "$QEMU_SRC/.git" ] || { say "no working repo at $QEMU_SRC: nothing to check"; return 0; }
    local dirty
    dirty=$(git_src status --porcelain)
    if [ -n "$dirty" ]; then
        echo "patchq: $QEMU_SRC has uncommitted changes not in patches/:" >&2
        echo "$dirty" | head -n 20 >&2
        exit 1
    fi
    if ! exported_matches; then
        echo "patchq: the commits in $QEMU_SRC ($BASE..HEAD) differ from patches/:" >&2
        git_src log --oneline $BASE..HEAD | head -n 30 >&2
        echo "patchq: run 'make export-patches' and commit patches/" >&2
        exit 1
    fi
    say "patches/ matches $QEMU_SRC ($(git_src rev-list --count $BASE..HEAD) commit(s))"
}

# --- check-patches -----------------------------------------------------------

cmd_check_patches() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared; run 'make qemu-src'"
    local tmp wt
    tmp=$(mktemp -d)
    wt=$tmp/check
    git_src worktree add -q --detach "$wt" series-base
    # shellcheck disable=SC2064 # expand now: the locals are gone at exit
    trap "git -C '$QEMU_SRC' worktree remove --force '$wt' >/dev/null 2>&1; rm -rf '$tmp'" EXIT
    QEMU_SRC=$wt ensure_identity
    local p errors=0 warnings=0 n=0 out
    while read -r p; do
        n=$((n + 1))
        if ! git -C "$wt" am -q --keep-cr "$PATCHES/$p" >/dev/null 2>&1; then
            git -C "$wt" am --abort >/dev/null 2>&1 || true
            die "patch $p does not apply on top of the preceding ones"
        fi
        out=$(cd "$wt" && ./scripts/checkpatch.pl --no-color "$PATCHES/$p" 2>&1) && rc=0 || rc=$?
        local e w
        e=$(grep -c '^ERROR:' <<<"$out" || true)
        w=$(grep -c '^WARNING:' <<<"$out" || true)
        errors=$((errors + e))
        warnings=$((warnings + w))
        if [ "$rc" != 0 ] || [ "$e" != 0 ]; then
            echo "FAIL $p: $e error(s), $w warning(s)"
            # shellcheck disable=SC2001 # indent every line
            sed 's/^/    /' <<<"$out"
            [ "$e" != 0 ] || errors=$((errors + 1))
        elif [ "$w" != 0 ]; then
            echo "WARN $p: $w warning(s)"
            echo "$out" | grep -A3 '^WARNING:' | sed 's/^/    /'
        else
            echo "ok   $p"
        fi
    done < <(series_files)
    echo "check-patches: $n patch(es) applied in order; checkpatch: $errors error(s), $warnings warning(s)"
    # The standalone patches depend on nothing else of the series: they
    # apply, in order, to upstream itself (each touches only upstream code;
    # two that add a test plugin share the line that lists them).
    git -C "$wt" checkout -q --detach qemu-base
    for p in $(series_files | grep '^standalone/' || true); do
        git -C "$wt" am -q --keep-cr "$PATCHES/$p" >/dev/null 2>&1 || {
            git -C "$wt" am --abort >/dev/null 2>&1 || true
            die "standalone patch $p does not apply to upstream v$QEMU_VERSION and the standalone patches before it"
        }
        echo "ok   $p applies to upstream v$QEMU_VERSION (after the standalone patches before it)"
    done
    check_submission
    check_same_set
    [ "$errors" = 0 ]
}

# 'make submission' refuses the placeholder identity and leaves none of it
# in what it writes.
check_submission() {
    local dir out
    dir=$(mktemp -d)
    if out=$(SENDER="$PLACEHOLDER_ID" SUBMISSION_DIR=$dir/s "$0" submission 2>&1) ||
       ! grep -q "is a placeholder" <<<"$out"; then
        rm -rf "$dir"
        die "submission accepted the placeholder identity: $out"
    fi
    SENDER="Test Sender <test.sender@qemu.org>" SUBMISSION_DIR=$dir/s "$0" submission >/dev/null ||
        { rm -rf "$dir"; die "submission failed for a real identity"; }
    local n
    n=$(grep -l "^Signed-off-by: Test Sender <test.sender@qemu.org>$" "$dir"/s/*/0*.patch | wc -l)
    rm -rf "$dir"
    [ "$n" = "$(( $(series_files | grep -c '^standalone/') + $(master_files | wc -l) ))" ] ||
        die "submission: $n patch(es) signed by the sender, expected every standalone and upstream patch"
    echo "ok   make submission: the sender's identity in every patch, no placeholder"
}

# --- check-builds ------------------------------------------------------------

# Build QEMU and the test plugins after each patch, in a worktree at a fixed
# path (so that ccache hits across runs and with the main build). CONFIGURE_ARGS_FILE holds the
# configure arguments, shell-quoted.
cmd_check_builds() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared; run 'make qemu-src'"
    : "${CONFIGURE_ARGS_FILE:?}" "${PATCH_BUILD_DIR:?}"
    # The same layout as QEMU_SRC and QEMU_BUILD (qemu-src beside
    # qemu-build): with CCACHE_BASEDIR, files that a patch leaves as they are
    # in the full series hit the main build's cache entries.
    local wt=$PATCH_BUILD_DIR/qemu-src bld=$PATCH_BUILD_DIR/qemu-build p n=0
    git_src worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
    git_src worktree prune
    git_src worktree add -q --detach "$wt" series-base
    QEMU_SRC=$wt ensure_identity
    rm -rf "$bld" && mkdir -p "$bld"
    (cd "$bld" && eval "$wt/configure $(cat "$CONFIGURE_ARGS_FILE")" >configure.log 2>&1) ||
        die "configure failed on series-base; see $bld/configure.log"
    while read -r p; do
        n=$((n + 1))
        git -C "$wt" am -q --keep-cr "$PATCHES/$p" >/dev/null 2>&1 ||
            die "patch $p does not apply on top of the preceding ones"
        if ninja -C "$bld" qemu-system-x86_64 qemu-x86_64 test-plugins >"$bld/ninja.log" 2>&1; then
            echo "ok   $p builds"
        else
            tail -n 30 "$bld/ninja.log" | sed 's/^/    /'
            die "the tree does not build after $p"
        fi
    done < <(series_files)
    git_src worktree remove --force "$wt"
    echo "check-builds: QEMU and the test plugins build after each of $n patch(es)"
}

# --- the submission set on master ---------------------------------------------

# The subject of each patch file given, one a line, without "[PATCH ...]"
# and with a folded Subject: header unfolded.
subjects() {
    local f
    for f in "$@"; do
        awk '/^$/ { exit } /^Subject: / { s = $0; on = 1; next }
             on && /^[ \t]/ { s = s $0; next } { on = 0 }
             END { sub(/^Subject: (\[[^]]*\] )?/, "", s); gsub(/[ \t]+/, " ", s); print s }' "$f"
    done
}

# The set exists twice, generated from the two working repos: in the
# product's form (patches/interplugin/, on 10.2.2) and in upstream's
# (patches/upstream/, on master). Both must be the same commits, in the
# same order, with the same subjects; and their changes may differ only
# as patches/forms.diff records (the header's path, the version instead
# of feature macros, set_pc, test integration), so that a change made on
# one side only fails here.
FORMS=$PATCHES/forms.diff

# The lines a patch adds and removes, each after its file's name (the
# header's path as on master), without line numbers or context.
changed_lines() {
    awk '/^diff --git / { f = $4; sub(/^b\//, "", f)
                          sub(/^include\/qemu\/qemu-plugin\.h$/, "include/plugins/qemu-plugin.h", f)
                          indiff = 1; next }
         !indiff { next }
         /^(--- (a\/|\/dev\/null)|\+\+\+ (b\/|\/dev\/null))/ { next }
         /^[-+]/ { print f ": " $0 }' "$1"
}

# What differs between the two forms, patch by patch.
form_differences() {
    local -a product master
    local i
    mapfile -t product < <(series_files | grep '^interplugin/')
    mapfile -t master < <(master_files)
    echo "# Differences between patches/interplugin/ (v$QEMU_VERSION) and patches/upstream/"
    echo "# (master), per patch: '<' only on v$QEMU_VERSION, '>' only on master. Written"
    echo "# by 'make record-forms'; 'make check-master' fails when the forms differ"
    echo "# otherwise."
    for i in "${!master[@]}"; do
        echo "## patch $((i + 1)): $(subjects "$PATCHES/${master[$i]}")"
        diff --unchanged-line-format= --old-line-format='< %L' --new-line-format='> %L' \
            <(changed_lines "$PATCHES/${product[$i]}") <(changed_lines "$PATCHES/${master[$i]}") || true
    done
}

check_same_set() {
    local product master
    product=$(subjects $(series_files | grep '^interplugin/' | sed "s|^|$PATCHES/|"))
    master=$(subjects $(master_files | sed "s|^|$PATCHES/|"))
    if [ "$product" != "$master" ]; then
        echo "patchq: patches/interplugin/ (v$QEMU_VERSION) and patches/upstream/ (master) are not the same commits:" >&2
        diff <(echo "$product") <(echo "$master") | sed -n 's/^</  only on v'"$QEMU_VERSION"':/p;s/^>/  only on master:/p' >&2
        die "change both working repos ('make export-patches' exports both)"
    fi
    echo "ok   patches/interplugin/ and patches/upstream/: the same $(master_files | wc -l) commits, by subject"
    [ -f "$FORMS" ] || die "$FORMS is missing: run 'make record-forms'"
    local out
    if ! out=$(diff -u "$FORMS" <(form_differences)); then
        echo "patchq: the two forms of the set differ other than as patches/forms.diff records:" >&2
        sed 's/^/    /' <<<"$out" | head -n 60 >&2
        die "make the same change in the other working repo and export both; if the difference is meant, 'make record-forms' and commit patches/forms.diff"
    fi
    echo "ok   the two forms differ only as patches/forms.diff records"
}

cmd_record_forms() {
    form_differences >"$FORMS"
    say "wrote $FORMS ($(grep -c '^[<>]' "$FORMS") differing line(s))"
}

# On master: every patch of the set applies in order, passes checkpatch
# and builds (QEMU and the test plugins); the build is left in
# PATCH_BUILD_DIR/qemu-build for check-tcg.
cmd_check_master() {
    [ -d "$QEMU_SRC/.git" ] || die "$QEMU_SRC is not prepared; run 'make master-src'"
    : "${CONFIGURE_ARGS_FILE:?}" "${PATCH_BUILD_DIR:?}"
    check_same_set
    local wt=$PATCH_BUILD_DIR/qemu-src bld=$PATCH_BUILD_DIR/qemu-build p n=0 errors=0 warnings=0 out rc
    git_src worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
    git_src worktree prune
    git_src worktree add -q --detach "$wt" master-base
    QEMU_SRC=$wt ensure_identity
    copy_master_subprojects "$wt"
    rm -rf "$bld" && mkdir -p "$bld"
    (cd "$bld" && eval "$wt/configure $(cat "$CONFIGURE_ARGS_FILE") --disable-download" >configure.log 2>&1) ||
        { tail -n 20 "$bld/configure.log" | sed 's/^/    /'; die "configure failed on master; see $bld/configure.log"; }
    while read -r p; do
        n=$((n + 1))
        git -C "$wt" am -q --keep-cr "$PATCHES/$p" >/dev/null 2>&1 || {
            git -C "$wt" am --abort >/dev/null 2>&1 || true
            die "patch $p does not apply to master ${MASTER_COMMIT:0:12} and the patches before it"
        }
        out=$(cd "$wt" && ./scripts/checkpatch.pl --no-color "$PATCHES/$p" 2>&1) && rc=0 || rc=$?
        local e w
        e=$(grep -c '^ERROR:' <<<"$out" || true)
        w=$(grep -c '^WARNING:' <<<"$out" || true)
        warnings=$((warnings + w))
        if [ "$rc" != 0 ] || [ "$e" != 0 ]; then
            sed 's/^/    /' <<<"$out"
            errors=$((errors + e + 1))
            echo "FAIL $p: checkpatch: $e error(s), $w warning(s)"
        fi
        if ninja -C "$bld" qemu-system-x86_64 qemu-x86_64 test-plugins >"$bld/ninja.log" 2>&1; then
            echo "ok   $p applies, builds; checkpatch: $e error(s), $w warning(s)"
        else
            tail -n 30 "$bld/ninja.log" | sed 's/^/    /'
            die "master does not build after $p"
        fi
    done < <(master_files)
    [ "$n" != 0 ] || die "patches/upstream/ has no patch"
    # The cover letter says what the set is: its base and its diffstat.
    local cover=$PATCHES/upstream/0000-cover-letter.patch stat
    grep -qx "base-commit: $MASTER_COMMIT" "$cover" ||
        die "the cover letter's base-commit is not $MASTER_COMMIT"
    while IFS= read -r stat; do
        grep -qxF -- "$stat" "$cover" ||
            die "the cover letter's diffstat is not the set's ('git diff --stat=80 master-base..HEAD'): no line '$stat'"
    done < <(git -C "$wt" diff --stat=80 master-base..HEAD)
    while IFS= read -r stat; do
        grep -qxF -- "  $stat" "$cover" ||
            die "the cover letter's shortlog lacks '$stat'"
    done < <(subjects $(master_files | sed "s|^|$PATCHES/|"))
    grep -q "^${PLACEHOLDER_ID% <*} ($n):\$" "$cover" ||
        die "the cover letter's shortlog does not count $n patches"
    echo "ok   the cover letter names base-commit ${MASTER_COMMIT:0:12}, the set's diffstat and shortlog"
    echo "check-master: $n patch(es) apply to master ${MASTER_COMMIT:0:12} and build after each; checkpatch: $errors error(s), $warnings warning(s)"
    [ "$errors" = 0 ]
}

# --- submission --------------------------------------------------------------

PLACEHOLDER_ID="QEMU xplugin team <xplugin@example.org>"

# Write the patches to send to $SUBMISSION_DIR, with the sender's identity
# $SENDER ("Full Name <address>") as author and in the Signed-off-by lines.
# The placeholder identity of the working repo must never be sent.
cmd_submission() {
    : "${SUBMISSION_DIR:?}"
    [ -n "${SENDER:-}" ] ||
        die "say who sends the patches: make submission SENDER='Full Name <you@example.com>'"
    [[ "$SENDER" =~ ^[^\<\>@]*[^\<\>@[:space:]][[:space:]]+\<[^\<\>[:space:]@]+@[^\<\>[:space:]@]+\.[^\<\>[:space:]@]+\>$ ]] ||
        die "SENDER must be 'Full Name <address@domain>', not '$SENDER'"
    case "$SENDER" in
        *@example.org\>|*@example.com\>|*@localhost\>|"$PLACEHOLDER_ID")
            die "SENDER '$SENDER' is a placeholder, not a real person" ;;
    esac
    local sedcmd kind n=0 esc
    # as a sed replacement: & | and \ quoted
    esc=$(printf '%s' "$SENDER" | sed 's/[&|\\]/\\&/g')
    sedcmd="s|^From: $PLACEHOLDER_ID\$|From: $esc|;s|^Signed-off-by: $PLACEHOLDER_ID\$|Signed-off-by: $esc|"
    # the cover letter's shortlog: "QEMU xplugin team (N):"
    sedcmd="$sedcmd;s|^${PLACEHOLDER_ID% <*} (\([0-9]*\)):\$|${esc% <*} (\1):|"
    rm -rf "$SUBMISSION_DIR"
    for kind in standalone upstream; do
        mkdir -p "$SUBMISSION_DIR/$kind"
        for p in "$PATCHES/$kind"/[0-9][0-9][0-9][0-9]-*.patch; do
            [ -f "$p" ] || continue
            sed -e "$sedcmd" "$p" >"$SUBMISSION_DIR/$kind/$(basename "$p")"
            n=$((n + 1))
        done
    done
    # The set is numbered as its cover letter says: [PATCH v2 0/7] makes
    # the others [PATCH v2 1/7] ... [PATCH v2 7/7].
    local cover=$SUBMISSION_DIR/upstream/0000-cover-letter.patch
    if [ -f "$cover" ]; then
        local prefix total i=0 f
        prefix=$(sed -n 's/^Subject: \[\(PATCH[^]]*\) 0\/\([0-9]*\)\].*/\1/p' "$cover")
        total=$(sed -n 's/^Subject: \[PATCH[^]]* 0\/\([0-9]*\)\].*/\1/p' "$cover")
        [ -n "$prefix" ] && [ -n "$total" ] ||
            die "the cover letter's subject is not '[PATCH vN 0/M] ...'"
        for f in "$SUBMISSION_DIR"/upstream/[0-9][0-9][0-9][0-9]-*.patch; do
            case $f in */0000-*) continue ;; esac
            i=$((i + 1))
            sed -i "s|^Subject: \[PATCH\] |Subject: [$prefix $i/$total] |" "$f"
        done
        [ "$i" = "$total" ] ||
            die "the cover letter announces $total patches, the set has $i"
    fi
    # Every patch is from the sender, in one unfolded header line.
    for f in "$SUBMISSION_DIR"/*/[0-9][0-9][0-9][0-9]-*.patch; do
        local from
        from=$(sed -n '/^$/q;/^From: /p' "$f")
        [ "$from" = "From: $SENDER" ] && ! sed -n '/^$/q;/^From: /{n;p}' "$f" | grep -q '^[[:space:]]' ||
            die "$(basename "$f") is not from '$SENDER' ($from); reset its author in the working repo"
    done
    if grep -rlE "${PLACEHOLDER_ID% <*}|xplugin@example.org" "$SUBMISSION_DIR" >/dev/null; then
        grep -rnE "${PLACEHOLDER_ID% <*}|xplugin@example.org" "$SUBMISSION_DIR" | head -n 5 >&2
        die "the placeholder identity is still in the submission"
    fi
    say "wrote $n patch(es) from $SENDER to $SUBMISSION_DIR (standalone/ and upstream/)"
}

case "${1:-}" in
    prepare) cmd_prepare ;;
    apply) cmd_apply ;;
    reset) cmd_reset ;;
    prepare-master) use_master; cmd_prepare_master ;;
    apply-master) use_master; ensure_master_subprojects; cmd_apply ;;
    record-forms) use_master; cmd_record_forms ;;
    check-forms) check_same_set ;;
    reset-master) use_master; cmd_reset ;;
    export)
        # Both repos clean first: a failure half-way would leave patches/
        # with one side exported.
        for r in "$QEMU_SRC" "$MASTER_SRC"; do
            [ ! -d "$r/.git" ] || [ -z "$(git -C "$r" status --porcelain --untracked-files=no)" ] ||
                die "$r has uncommitted changes; commit them first (nothing exported)"
        done
        cmd_export
        if [ -d "$MASTER_SRC/.git" ]; then
            use_master
            cmd_export
        else
            say "no master working repo at $MASTER_SRC: patches/upstream/ left as it is ('make master-src' first when the set changes)"
        fi ;;
    check-exported)
        cmd_check_exported
        if [ -d "$MASTER_SRC/.git" ]; then use_master; cmd_check_exported; fi ;;
    check-master) use_master; cmd_check_master ;;
    check-patches) cmd_check_patches ;;
    check-builds) cmd_check_builds ;;
    submission) cmd_submission ;;
    *) sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
