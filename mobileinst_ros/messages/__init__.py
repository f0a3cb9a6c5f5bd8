"""ROS messages <-> numpy: camera images (``images``) and the package's InstanceArray (``instances``).
Shared by the node, the bags, the demo and the evaluation; no torch."""
