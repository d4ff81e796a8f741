"""The sensing simulator: people (body, motions) in rooms seen by depth, LiDAR and WiFi CSI.

`generate.simulate_sequence` is the in-memory API, `python -m midas_ros.sim.generate` the CLI, and
`sensors` holds the rig's poses and intrinsics as plain constants.
"""
