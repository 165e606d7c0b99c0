"""Test-wide settings: no hub access, and a ROS 2 domain of this test run's own.

Every pytest run picks a ROS_DOMAIN_ID from its process id and keeps discovery on localhost, so
parallel runs on one machine (CI beside a developer) never see each other's nodes.
"""

from __future__ import annotations

import os

# One math thread per process: the suite runs nodes and trainers in several processes at once,
# and oversubscribed BLAS threads on a 2-core machine are many times slower than one each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["ROS_DOMAIN_ID"] = str(os.environ.get("COSMOS_ROS_TEST_DOMAIN_ID") or 1 + os.getpid() % 100)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
