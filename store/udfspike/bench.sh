#!/bin/bash
# Throwaway spike (issue 16): times per-person-array queries with and without the spike UDFs on a server
# held up by TestHold (its HTTP address is the first line of $WAYMARK_UDF_SPIKE_DIR/addr). ONLY=regex picks queries.
# usage: udfspike-bench.sh ADDR RUNS
A=$1; RUNS=${2:-3}
WHERE="event IN ('Product Viewed','Product Added','Order Completed')"
MASK="if(event='Product Viewed',1,0)+if(event='Product Added',2,0)+if(event='Order Completed',4,0)"
declare -A Q
Q[a_bare_groupby]="SELECT count() FROM (SELECT person_id, count() FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[b_arrays_no_udf]="SELECT count(), sum(length(t)), sum(length(m)) FROM (SELECT groupArray(ts_ms) AS t, groupArray($MASK) AS m FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[c_rb_executable]="SELECT count(), sum(length(r)) FROM (SELECT wm_rb(groupArray(ts_ms), groupArray($MASK)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[d_rb_pool]="SELECT count(), sum(length(r)) FROM (SELECT wm_rb_pool(groupArray(ts_ms), groupArray($MASK)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[e_rb_chunk_pool]="SELECT count(), sum(length(r)) FROM (SELECT wm_rb_chunk(groupArray(ts_ms), groupArray($MASK)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[f_tsv_executable]="SELECT count(), sum(length(r)) FROM (SELECT wm_tsv(groupArray(ts_ms), groupArray($MASK)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[g_tsv_pool]="SELECT count(), sum(length(r)) FROM (SELECT wm_tsv_pool(groupArray(ts_ms), groupArray($MASK)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[h_sorted_no_udf]="SELECT count(), sum(length(s)) FROM (SELECT arraySort(groupArray((ts_ms, seq, $MASK))) AS s FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[i_sorted_rb]="SELECT count(), sum(length(r)) FROM (SELECT arraySort(groupArray((ts_ms, seq, $MASK))) AS s, wm_rb_chunk(arrayMap(x -> x.1, s), arrayMap(x -> toUInt64(x.3), s)) AS r FROM spike.events WHERE $WHERE GROUP BY person_id)"
Q[j_windowFunnel]="SELECT level, count() FROM (SELECT person_id, windowFunnel(86400000)(ts_ms, event='Product Viewed', event='Product Added', event='Order Completed') AS level FROM spike.events WHERE $WHERE GROUP BY person_id) GROUP BY level ORDER BY level"
for k in $(printf '%s\n' "${!Q[@]}" | sort); do
  [ -n "$ONLY" ] && [[ ! "$k" =~ $ONLY ]] && continue
  for r in $(seq $RUNS); do
    la=$(cut -d' ' -f1 /proc/loadavg)
    res=$(curl -sS -o /tmp/udfspike-out -w '%{time_total}' "http://$A/" --data-binary "${Q[$k]} FORMAT TSV")
    printf '%-18s run%d  %6.2fs  load1=%s  -> %s\n' "$k" "$r" "$res" "$la" "$(head -c 120 /tmp/udfspike-out | tr '\n\t' '; ')"
  done
done
