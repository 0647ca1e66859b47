"""Test-session set-up shared by every test module."""
from dso_nas import cap_onednn_isa, tune_allocator, use_all_cores

# The same OpenMP thread count as the CLI, set before any test imports MXNet, so in-process runs
# and `python -m dso_nas` subprocesses compute alike (resume tests compare them bit for bit).
use_all_cores()
cap_onednn_isa()
tune_allocator()
