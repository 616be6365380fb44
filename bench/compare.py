#!/usr/bin/env python3
"""Compares two bench/run.sh results.jsonl files: the median of each wsgate metric, before and after.

    python3 bench/compare.py BEFORE.jsonl AFTER.jsonl
"""
import json, statistics, sys
def load(p):
    out={}
    for l in open(p):
        d=json.loads(l)
        if d['target']!='wsgate': continue
        out.setdefault((d['scenario'],d['case']),[]).append(d)
    return out
old, new = load(sys.argv[1]), load(sys.argv[2])
metrics={'idle':['rss_per_connection_kib','connect_rate_per_s','server_cpu_us_per_op'],
 'connect':['connects_per_s','connect_close_p99_ms','server_cpu_us_per_op'],
 'echo':['msgs_per_s','latency_p50_ms','latency_p99_ms','server_cpu_us_per_op'],
 'post':['req_per_s','latency_p50_ms','latency_p99_ms','server_cpu_us_per_op'],
 'broadcast':['deliveries_per_s','delay_p50_ms','delay_p99_ms','server_cpu_us_per_op']}
print(f"{'case':28} {'metric':24} {'before (median)':>16} {'after (median)':>16} {'change':>8}")
for key in sorted(old):
    if key not in new: continue
    for m in metrics[key[0]]:
        a=statistics.median(d[m] for d in old[key]); b=statistics.median(d[m] for d in new[key])
        ch=(b-a)/a*100 if a else 0
        print(f"{key[0]+'/'+key[1]:28} {m:24} {a:16.3f} {b:16.3f} {ch:+7.1f}%")
