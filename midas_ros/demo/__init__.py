"""The demo: a simulated sensor rig with dropouts, replayed live through the ROS node graph and scored.

It uses ``midas_ros.ros`` (the runtime) and ``midas_ros.sim`` / ``midas_ros.evaluate``; nothing there
imports it. ``python -m midas_ros.demo`` (console script ``midas_demo``) runs it.

- ``scenario.py``  the rig (frames, sensor poses, stamp offsets and jitter), the dropout schedule, the
                   demo bag (``write_demo_bag``, ``read_demo_bag_info``) and its CLI
- ``drivers.py``   real LiDAR drivers' PointCloud2 layouts (Ouster, Velodyne, Livox) filled from xyz
- ``live.py``      the bag through player + adapters + sync + fusion in one process, skeletons recorded
- ``scoring.py``   MPJPE per live subset (from the fusion records) against the bag's ground truth
- ``plots.py``     predicted vs true skeletons
- ``run.py``       ``run_demo`` and ``main``: all of the above, Ctrl-C safe
"""
