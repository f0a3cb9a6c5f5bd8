"""mobileinst_ros: MobileInst video instance segmentation and tracking for ROS 2 on one CPU core."""
# The message classes (`mobileinst_ros.msg`) are generated at build time into the *installed* copy of
# this package. Extending the package path lets a source checkout on sys.path (tests, editable
# installs) still find them, so imports look the same however the package was built.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
