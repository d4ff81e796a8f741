"""The demo: a simulated sensor rig with dropouts, replayed live through the ROS node graph and scored.

It uses ``midas_ros.ros`` (the runtime), ``midas_ros.replay`` (the demo is one live replay of its
simulated bag: the same live run and scoring as ``midas_replay``) and ``midas_ros.sim`` /
``midas_ros.evaluate``; nothing there imports it. ``python -m midas_ros.demo`` (console script
``midas_demo``) runs it.

- ``scenario.py``  the rig (frames, sensor poses, stamp offsets and jitter), the dropout schedule, the
                   demo bag (``write_demo_bag``, ``read_demo_bag_info``) and its CLI
- ``cloud_layouts.py`` real LiDAR drivers' PointCloud2 layouts (Ouster, Velodyne, Livox) filled from xyz
- ``scoring.py``   the printed table: MPJPE per live subset beside the constant pose (replay scoring's rows)
- ``plots.py``     predicted vs true skeletons
- ``run.py``       ``run_demo`` and ``main``: all of the above, Ctrl-C safe
"""
