"""Replay evaluation of any bag: one command, live or fast, scored per live subset.

    midas_replay BAG [BAG ...] --out DIR [--mode fast|live] [--rate R] [--jobs N] [topics, poses, GT ...]
    python -m midas_ros.replay --help

A bag (MCAP or sqlite3, as ``ros2 bag record`` writes them) of a depth camera (+ CameraInfo), a LiDAR
and CSI, with a ground-truth skeleton (a PoseArray topic of the 17 MM-Fi joints, or an ``.npz``), is run
through midas_ros and scored against that ground truth, per live modality subset, beside the
checkpoint's constant-pose reference.

- ``--mode fast`` (fast.py): the adapters' samplers and the fusion node's policy and fusion step, the
  very classes the nodes run (ros/samples.py, ros/fusion.py) with the nodes' parameters, and the same
  model, in one plain Python loop, without DDS: the bag's log time stands in for each sample's arrival
  time. As fast as the CPU allows: sets are fused in batches, a lone bag's depth and LiDAR are
  preprocessed in processes of their own (arrivals.py); ``--jobs N`` runs several bags at once.
- ``--mode live`` (live.py): the bag is played with /clock at ``--rate`` through the real node graph
  (adapters + fusion node, composed in one process) and the skeleton stream is recorded
  (`record_live_run`; the demo runs its bag this way too).

Both write the skeleton stream as the fusion node publishes it (PoseArray, MarkerArray, fusion records)
to an MCAP bag (skeleton_bag.py), and are scored from that bag by the same code (scoring.py, which the
demo's table comes from too): a Markdown + CSV table per live subset, per-skeleton errors (CSV) and a
timeline plot (timeline.py).

Modules: bag.py (what a bag holds, topic checks), tf_static.py (sensor poses from /tf_static),
ground_truth.py, settings.py (the nodes' parameters from config/*.yaml and --set), plan.py (one bag's
replay resolved up front), arrivals.py (each sensor's samples), skeleton_bag.py (the skeleton
stream's topics, messages and reader), fast.py, live.py, scoring.py, timeline.py, cli.py (the command).
"""
