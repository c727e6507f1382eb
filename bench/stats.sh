# bench/stats.sh — medians and ranges over benchmark rounds; sourced by the bench scripts.
# Lists are space-separated; entries that are not numbers (a failed run's "fail") are left out.

# median_with VALUES COMPANIONS — the median value and the companion of the same run (e.g. its
# latency); with no numeric value, the first entries as they are.
median_with() {
  paste -d' ' <(tr ' ' '\n' <<<"$1" | grep .) <(tr ' ' '\n' <<<"$2" | grep .) | sort -g -k1,1 |
    awk '$1 ~ /^[0-9.]+$/ {n++; v[n]=$1; c[n]=$2} NR == 1 {f=$0}
      END {if (n) {m=int((n+1)/2); print v[m], c[m]} else print f}'
}

# median VALUES — the median value.
median() { median_with "$1" "$1" | cut -d' ' -f1; }

# range VALUES — "lowest–highest".
range() {
  tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'
}
