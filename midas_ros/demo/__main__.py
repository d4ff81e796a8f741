"""``python -m midas_ros.demo``: the live demo (run.py)."""

from midas_ros.demo.run import main

main()
