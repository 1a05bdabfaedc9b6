# CPU time readings shared by the benchmark scripts (sourced, not run).

# A process's CPU time in clock ticks, user + system.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The machine's CPU time over all states, and the part of it the
# hypervisor gave to other guests ("steal"), in clock ticks.
machine() { awk '/^cpu /{t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9}' /proc/stat; }

# The share of the machine stolen between two `machine` readings: a run
# that is slow because the host was busy shows it here, not in our code.
stolen() { echo "$1 $2" | awk '{print ($4 - $2) / ($3 - $1)}'; }
