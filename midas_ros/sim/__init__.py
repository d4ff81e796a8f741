"""The sensing simulator: people (body, motions) in rooms seen by depth, LiDAR and WiFi CSI.

`generate.simulate_sequence` is the in-memory API, `python -m midas_ros.sim.generate` the CLI, `rigs`
the pool of sensor rigs a sequence is seen through, `sensors` the room's WiFi link.
"""
