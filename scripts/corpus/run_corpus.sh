#!/usr/bin/env bash
# Run `svaclr prepare` over the QA corpus and check the results.
# Usage: run_corpus.sh BIN OUTDIR [CORPUS]     (CORPUS defaults to ./data beside this script, built by make_corpus.sh)
# Env: TIMEOUT (seconds per prepare call, default 120), THREADS (pass --threads N; default: the binary's default)
# Layout written: OUTDIR/out/<run>/ (prepare's --out), OUTDIR/logs/<run>.{cmd,rc,out,err,secs},
#                 OUTDIR/findings.json, OUTDIR/summary.txt (also printed).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 2 ] || { echo "usage: run_corpus.sh BIN OUTDIR [CORPUS]" >&2; exit 2; }
BIN="$(realpath "$1")"
OUT="$(realpath -m "$2")"
CORPUS="$(realpath "${3:-$HERE/data}")"
TIMEOUT="${TIMEOUT:-120}"
[ -x "$BIN" ] || { echo "run_corpus.sh: $BIN is not executable" >&2; exit 2; }
[ -f "$CORPUS/runs.json" ] || { echo "run_corpus.sh: $CORPUS/runs.json missing (run make_corpus.sh)" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT/out" "$OUT/logs" "$OUT/work"
{ echo "bin=$BIN"; echo "uid=$(id -u)"; echo "corpus=$CORPUS"; echo "timeout=$TIMEOUT"; date -Is; } > "$OUT/env.txt"
t_all=$(date +%s.%N)

python3 - "$CORPUS/runs.json" > "$OUT/work/runs.tsv" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    print("\t".join([r["name"], r["dataset"], r["root"], " ".join(r["args"]) or "-", r.get("rerun_of") or "-",
                     "1" if r.get("out_is_file") else "0", "1" if r.get("out_equals_root") else "0",
                     (r["swap"]["dst"] + "," + r["swap"]["src"]) if r.get("swap") else "-"]))
EOF

while IFS=$'\t' read -r name dataset root args rerun_of out_is_file out_eq_root swap; do
  rootp="$CORPUS/roots/$root"
  outp="$OUT/out/$name"
  if [ "$rerun_of" != "-" ]; then
    cp -a "$OUT/out/$rerun_of" "$outp"
  fi
  if [ "$out_is_file" = 1 ]; then
    outp="$OUT/work/$name.outfile"; echo "I am a file" > "$outp"
  fi
  if [ "$out_eq_root" = 1 ]; then
    cp -a "$rootp" "$OUT/work/$name-root"; rootp="$OUT/work/$name-root"; outp="$rootp"
    ln -sfn "$outp" "$OUT/out/$name"
  fi
  if [ "$swap" != "-" ]; then
    # first pass on a copy of the root, then replace the dst case's file with the src case's file
    cp -a "$rootp" "$OUT/work/$name-root"; rootp="$OUT/work/$name-root"
    "$BIN" prepare --dataset "$dataset" --root "$rootp" --out "$outp" --quiet >/dev/null 2>&1 </dev/null
    dst=$(python3 -c 'import json,sys; c={x["id"]:x for x in json.load(open(sys.argv[1]))["cases"]}; print(c[sys.argv[2]]["file"])' "$CORPUS/cases.json" "${swap%%,*}")
    src=$(python3 -c 'import json,sys; c={x["id"]:x for x in json.load(open(sys.argv[1]))["cases"]}; print(c[sys.argv[2]]["file"])' "$CORPUS/cases.json" "${swap#*,}")
    sleep 1; cp "$rootp/$src" "$rootp/$dst"
  fi
  # shellcheck disable=SC2206
  extra=()
  [ "$args" != "-" ] && extra=($args)
  [ -n "${THREADS:-}" ] && extra+=(--threads "$THREADS")
  cmd=("$BIN" prepare --dataset "$dataset" --root "$rootp" --out "$outp" --quiet "${extra[@]}")
  printf '%q ' "${cmd[@]}" > "$OUT/logs/$name.cmd"
  t0=$(date +%s.%N)
  (cd "$OUT/work" && timeout -k 5 "$TIMEOUT" nice -n 5 "${cmd[@]}" </dev/null >"$OUT/logs/$name.out" 2>"$OUT/logs/$name.err")
  rc=$?
  t1=$(date +%s.%N)
  echo "$rc" > "$OUT/logs/$name.rc"
  python3 -c "print(f'{$t1-$t0:.2f}')" > "$OUT/logs/$name.secs"
  printf '%-22s rc=%-3s %6ss  %s\n' "$name" "$rc" "$(cat "$OUT/logs/$name.secs")" "$(head -c 150 "$OUT/logs/$name.err" | head -1)"
done < "$OUT/work/runs.tsv"

python3 -c "print(f'total prepare wall time: {$(date +%s.%N)-$t_all:.1f} s')" | tee "$OUT/logs/total.secs"
python3 "$HERE/check.py" "$CORPUS" "$OUT"
