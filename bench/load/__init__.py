"""The load tool: ``python -m bench.load SCENARIO [options]`` drives real 1:1 messages between
library clients through 3-hop onion paths on a devnet and reports throughput, latency, CPU cost
and ratios to floors measured in the same run (see :mod:`bench.load.cli`, docs/performance.md).

Also here: ``flood.py`` (the fairness benchmark's flooder) and ``relay_node.py`` (the relay
benchmark's bare relay process).
"""
