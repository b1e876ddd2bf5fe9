#!/usr/bin/env bash
# Build a deeptrade Apptainer image and record its digest.
#
#   containers/build.sh v100|gh200 [OUT.sif]
#
# v100  -> Apptainerfile          (x86_64; build on any x86_64 machine with Apptainer)
# gh200 -> containers/gh200.def   (aarch64; build natively on an ARM node, see build-gh200.sbatch)
#
# The image holds the committed tree (git archive HEAD), so its revision label is exact; the
# SIF's sha256 goes to OUT.sif.digest, which job manifests record. DEEPTRADE_SIGN=1 signs the
# SIF first (apptainer sign, with your default PGP key). Output dir: $DEEPTRADE_IMAGE_DIR
# (default containers/dist). Extra `apptainer build` options: $APPTAINER_BUILD_FLAGS
# (default --fakeroot when not root).
set -euo pipefail

die() { printf 'containers/build.sh: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
image="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$image" in
    v100) def="$repo/Apptainerfile"; want_arch=x86_64 ;;
    gh200) def="$repo/containers/gh200.def"; want_arch=aarch64 ;;
    *) usage ;;
esac
out_dir="${DEEPTRADE_IMAGE_DIR:-$repo/containers/dist}"
out="${2:-$out_dir/deeptrade-$image.sif}"

arch="$(uname -m)"
if [ "$arch" != "$want_arch" ]; then
    msg="the $image image is for $want_arch and must be built natively; this machine is $arch."
    if [ "$image" = gh200 ]; then
        msg+=" Submit the build to an ARM node instead:
    mkdir -p containers/dist && sbatch containers/build-gh200.sbatch
(see that file for the partition, time and memory it asks for)."
    fi
    die "$msg"
fi

command -v apptainer >/dev/null || die "apptainer is not installed on $(hostname)"
command -v git >/dev/null || die "git is needed to export the committed tree"

# Catch definition-file mistakes before a long build (same checks as the unit tests).
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3
PYTHONPATH="$repo/lib${PYTHONPATH:+:$PYTHONPATH}" "$py" - "$def" <<'PY' || die "fix $def first"
import sys
from deeptrade.launch.deffile import require_valid_deffile
require_valid_deffile(sys.argv[1])
PY

commit="$(git -C "$repo" rev-parse HEAD)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "containers/build.sh: warning: uncommitted changes are NOT in the image (it holds $commit)" >&2
fi
src="$(mktemp -d "${TMPDIR:-/tmp}/deeptrade-src.XXXXXX")"
trap 'rm -rf "$src"' EXIT
git -C "$repo" archive --format=tar HEAD | tar -x -C "$src"

flags="${APPTAINER_BUILD_FLAGS-}"
if [ -z "${APPTAINER_BUILD_FLAGS+x}" ] && [ "$(id -u)" != 0 ]; then flags=--fakeroot; fi

mkdir -p "$(dirname "$out")"
tmp="$out.partial"
rm -f "$tmp"
# shellcheck disable=SC2086  # flags is a user-supplied option list
apptainer build $flags \
    --build-arg GIT_COMMIT="$commit" \
    --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --build-arg SRC="$src" \
    "$tmp" "$def"
# Readers of $out must never see a half-written image.
mv -f "$tmp" "$out"

if [ "${DEEPTRADE_SIGN:-0}" = 1 ]; then
    apptainer sign "$out"
fi
# The digest is of the final file, after signing (signing rewrites the SIF).
digest="sha256:$(sha256sum "$out" | cut -d' ' -f1)"
printf '%s\n' "$digest" >"$out.digest.partial"
mv -f "$out.digest.partial" "$out.digest"
echo "built $out ($image, commit $commit)"
echo "digest $digest -> $out.digest"
