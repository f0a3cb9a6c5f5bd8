"""sensor_msgs/Image and CompressedImage to RGB uint8 (H, W, 3) and back, in numpy + OpenCV.

This replaces cv_bridge (no ROS 2 build of it installs from PyPI). ``image_to_rgb`` honours ``step``
(row padding) and ``is_bigendian``, and takes every encoding a camera driver publishes
(``sensor_msgs/image_encodings.hpp``): rgb/bgr/rgba/bgra in 8 and 16 bit, mono8/mono16, the OpenCV
type names 8UC1/3/4 and 16UC1/3/4 (read as cv_bridge does: BGR order), the four Bayer patterns in 8 and
16 bit, and the packed YUV formats uyvy (``yuv422``), yuyv (``yuv422_yuy2``) and nv21. 16-bit images keep
their high byte. Anything else (depth, float, signed, unknown) raises ``ImageConversionError`` saying why
it cannot be a camera frame; so do zero-size, truncated and oversized images.

``depth_image_array`` reads aligned depth images (16UC1 / mono16 in millimetres, 32FC1 in metres)
and ``camera_info_intrinsics`` a CameraInfo's pinhole matrix, for depth fusion.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mobileinst_ros.geometry.depth_fusion import Intrinsics

__all__ = ["DEPTH_ENCODINGS", "ImageConversionError", "MAX_PIXELS", "SUPPORTED_ENCODINGS", "camera_info_intrinsics",
           "compressed_to_rgb", "depth_image_array", "image_to_rgb", "labels_to_image_msg", "rgb_to_image_msg"]

# 8K UHD: larger frames come from a broken driver, and decoding one would stall the node.
MAX_PIXELS = 7680 * 4320


class ImageConversionError(ValueError):
    """An image message that cannot be read as a camera frame; the text says what was expected."""


@dataclass(frozen=True)
class _Layout:
    """How one encoding is stored: ``dtype`` per channel, ``channels`` per pixel, the OpenCV
    conversion to RGB (None: already RGB)."""

    dtype: type
    channels: int
    to_rgb: int | None


_U8, _U16 = np.uint8, np.uint16
_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(_U8, 3, None), "bgr8": _Layout(_U8, 3, cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(_U8, 4, cv2.COLOR_RGBA2RGB), "bgra8": _Layout(_U8, 4, cv2.COLOR_BGRA2RGB),
    "mono8": _Layout(_U8, 1, cv2.COLOR_GRAY2RGB),
    "rgb16": _Layout(_U16, 3, None), "bgr16": _Layout(_U16, 3, cv2.COLOR_BGR2RGB),
    "rgba16": _Layout(_U16, 4, cv2.COLOR_RGBA2RGB), "bgra16": _Layout(_U16, 4, cv2.COLOR_BGRA2RGB),
    "mono16": _Layout(_U16, 1, cv2.COLOR_GRAY2RGB),
    # OpenCV type names: cv_bridge reads multi-channel ones in OpenCV's own BGR(A) order.
    "8UC1": _Layout(_U8, 1, cv2.COLOR_GRAY2RGB), "8UC3": _Layout(_U8, 3, cv2.COLOR_BGR2RGB),
    "8UC4": _Layout(_U8, 4, cv2.COLOR_BGRA2RGB),
    "16UC1": _Layout(_U16, 1, cv2.COLOR_GRAY2RGB), "16UC3": _Layout(_U16, 3, cv2.COLOR_BGR2RGB),
    "16UC4": _Layout(_U16, 4, cv2.COLOR_BGRA2RGB),
    # OpenCV 5 names Bayer conversions by the pattern's first row pair, as ROS does.
    **{f"bayer_{p}{bits}": _Layout(dtype, 1, getattr(cv2, f"COLOR_Bayer{p.upper()}2RGB"))
       for p in ("rggb", "bggr", "gbrg", "grbg") for bits, dtype in ((8, _U8), (16, _U16))},
    # Packed 4:2:2, two bytes per pixel.
    "yuv422": _Layout(_U8, 2, cv2.COLOR_YUV2RGB_UYVY), "uyvy": _Layout(_U8, 2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _Layout(_U8, 2, cv2.COLOR_YUV2RGB_YUY2), "yuyv": _Layout(_U8, 2, cv2.COLOR_YUV2RGB_YUY2),
}
_NV21 = "nv21"  # planar 4:2:0: a full-size Y plane then interleaved VU at half size, step bytes per row
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(sorted(_LAYOUTS)) + (_NV21,)

# Encodings that are valid ROS images but not camera frames the model can see.
_NOT_CAMERA_PREFIXES = ("32FC", "64FC", "16FC", "8SC", "16SC", "32SC")


def _check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"{what} is empty ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageConversionError(f"{what} is {width}x{height}, larger than the {MAX_PIXELS}-pixel limit (8K)")


def _unsupported(encoding: str) -> ImageConversionError:
    if encoding.upper().startswith(_NOT_CAMERA_PREFIXES) or encoding.lower() in ("mono32", "depth"):
        reason = "is depth/float/signed data, not a camera frame"
    else:
        reason = "is not a known image encoding"
    return ImageConversionError(f"encoding {encoding!r} {reason}; expected one of {', '.join(SUPPORTED_ENCODINGS)}")


def _rows(msg: Image, row_bytes: int, rows: int) -> np.ndarray:
    """The image bytes as a (rows, row_bytes) uint8 view, skipping each row's ``step`` padding."""
    if msg.step < row_bytes:
        raise ImageConversionError(f"step {msg.step} is smaller than one {msg.encoding} row of width "
                                   f"{msg.width} ({row_bytes} bytes)")
    needed = msg.step * rows
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < needed:
        raise ImageConversionError(f"image data is truncated: {data.size} bytes, {msg.width}x{msg.height} "
                                   f"{msg.encoding} with step {msg.step} needs {needed}")
    return data[:needed].reshape(rows, msg.step)[:, :row_bytes]


def image_to_rgb(msg: Image) -> np.ndarray:
    """A sensor_msgs/Image as contiguous RGB uint8 (height, width, 3); raises ImageConversionError."""
    _check_size(msg.width, msg.height, "image")
    if msg.encoding == _NV21:
        if msg.width % 2 or msg.height % 2:
            raise ImageConversionError(f"nv21 needs even width and height, got {msg.width}x{msg.height}")
        yuv = _rows(msg, msg.width, msg.height * 3 // 2)
        return cv2.cvtColor(np.ascontiguousarray(yuv), cv2.COLOR_YUV2RGB_NV21)
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise _unsupported(msg.encoding)
    itemsize = np.dtype(layout.dtype).itemsize
    if layout.channels == 2 and msg.width % 2:
        raise ImageConversionError(f"{msg.encoding} packs pixel pairs: width must be even, got {msg.width}")
    rows = _rows(msg, msg.width * layout.channels * itemsize, msg.height)
    pixels = np.ascontiguousarray(rows)
    if itemsize == 2:
        pixels = pixels.view(">u2" if msg.is_bigendian else "<u2")
        pixels = (pixels >> 8).astype(np.uint8)  # the high byte, as cv_bridge's 16->8 bit scaling does
    pixels = pixels.reshape(msg.height, msg.width, layout.channels)
    if layout.channels == 1:
        pixels = pixels[:, :, 0]
    if layout.to_rgb is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels, layout.to_rgb)


# REP 118: 16-bit depth in millimetres, float depth in metres.
DEPTH_ENCODINGS = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}


def depth_image_array(msg: Image) -> np.ndarray:
    """An aligned depth Image as (height, width) uint16 millimetres or float32 metres in native byte
    order (``geometry.depth_fusion.depth_to_metres`` reads either); honours ``step`` and
    ``is_bigendian``. Raises ImageConversionError for another encoding or bad data."""
    _check_size(msg.width, msg.height, "depth image")
    dtype = DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ImageConversionError(f"depth encoding {msg.encoding!r} is not one of {', '.join(DEPTH_ENCODINGS)} "
                                   "(REP 118: 16UC1 in mm, 32FC1 in m)")
    itemsize = np.dtype(dtype).itemsize
    rows = np.ascontiguousarray(_rows(msg, msg.width * itemsize, msg.height))
    order = ">" if msg.is_bigendian else "<"
    return rows.view(np.dtype(dtype).newbyteorder(order)).reshape(msg.height, msg.width).astype(dtype, copy=False)


def camera_info_intrinsics(msg: CameraInfo) -> Intrinsics:
    """The pinhole intrinsics (``k``) and image size of a CameraInfo; ValueError for an uncalibrated or
    malformed one (zero or non-finite focal lengths, empty size)."""
    return Intrinsics.from_k(msg.k, msg.width, msg.height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, read without decoding."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


def _encoded_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by a PNG or JPEG header, or None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg, png, as image_transport's compressed plugin writes them) as
    RGB uint8 (H, W, 3); raises ImageConversionError for depth streams and undecodable data."""
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(f"format {msg.format!r} is a compressed depth stream, not a camera frame")
    data = bytes(msg.data)
    if not data:
        raise ImageConversionError("compressed image has no data")
    size = _encoded_size(data)
    if size is not None:
        _check_size(*size, f"compressed image ({msg.format or 'no format'})")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"compressed image ({msg.format or 'no format'}, {len(data)} bytes) "
                                   f"cannot be decoded as JPEG or PNG")
    _check_size(bgr.shape[1], bgr.shape[0], "decoded image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """RGB uint8 (H, W, 3) as an rgb8 Image with ``header``."""
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=False,
                 step=width * 3, data=np.ascontiguousarray(rgb, np.uint8).tobytes())


def labels_to_image_msg(labels: np.ndarray, header: Header) -> Image:
    """A per-pixel instance-id image (H, W) as a 32SC1 Image (track ids; 0 is background)."""
    height, width = labels.shape
    return Image(header=header, height=height, width=width, encoding="32SC1", is_bigendian=False,
                 step=width * 4, data=np.ascontiguousarray(labels, "<i4").tobytes())
