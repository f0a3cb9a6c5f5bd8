"""Tracked instances with a 3D position as a visualization_msgs/MarkerArray for RViz.

Each message first deletes every earlier marker (DELETEALL), then adds per located instance a box
(namespace ``instances``: centre = position, size = extent, at least ``MIN_SIZE_M``; the track's overlay
colour) and a label above it (namespace ``labels``: "class #track 1.23 m"). Marker ids are track ids,
the header is the colour image's (its optical frame).
"""
from __future__ import annotations

from collections.abc import Sequence

from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from mobileinst_ros.geometry.depth_fusion import InstancePosition, PositionStatus
from mobileinst_ros.messages.instances import InstanceLike
from mobileinst_ros.overlay import track_colour

__all__ = ["MIN_SIZE_M", "instance_markers"]

MIN_SIZE_M = 0.02  # a flat object still shows as a box
LABEL_HEIGHT_M = 0.1
BOX_ALPHA = 0.5


def _colour(track_id: int, alpha: float) -> ColorRGBA:
    r, g, b = track_colour(track_id)
    return ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=alpha)


def instance_markers(header: Header, instances: Sequence[InstanceLike], positions: Sequence[InstancePosition],
                     class_names: Sequence[str]) -> MarkerArray:
    """Boxes and labels of the instances whose position status is OK (see the module docstring)."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for inst, where in zip(instances, positions):
        if where.status != PositionStatus.OK:
            continue
        track_id = int(inst.track_id)
        x, y, z = where.position
        size = Vector3(**{axis: max(v, MIN_SIZE_M) for axis, v in zip("xyz", where.extent)})
        box = Marker(header=header, ns="instances", id=track_id, type=Marker.CUBE, action=Marker.ADD,
                     pose=Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(w=1.0)), scale=size,
                     color=_colour(track_id, BOX_ALPHA))
        # y points down in the optical frame: "above" the box is towards -y.
        label = Marker(header=header, ns="labels", id=track_id, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                       pose=Pose(position=Point(x=x, y=y - size.y / 2 - LABEL_HEIGHT_M, z=z),
                                 orientation=Quaternion(w=1.0)),
                       scale=Vector3(z=LABEL_HEIGHT_M), color=_colour(track_id, 1.0),
                       text=f"{class_names[int(inst.class_id)]} #{track_id} {where.distance:.2f} m")
        markers += [box, label]
    return MarkerArray(markers=markers)
