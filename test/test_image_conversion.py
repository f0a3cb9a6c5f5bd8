"""sensor_msgs/Image and CompressedImage to RGB: every camera encoding, step padding, endianness, and
clear errors for what cannot be a camera frame."""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mobileinst_ros.messages.images import (MAX_PIXELS, ImageConversionError, compressed_to_rgb, image_to_rgb,
                                                  labels_to_image_msg, rgb_to_image_msg)

H, W = 24, 32


def _reference() -> np.ndarray:
    """A smooth RGB image (demosaicing and chroma subsampling are exact enough on smooth content)."""
    yy, xx = np.mgrid[:H, :W]
    return np.stack([xx * 6 + 20, yy * 8 + 10, 200 - xx * 3 - yy * 2], axis=-1).astype(np.uint8)


def _msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image of ``pixels`` (H, W[, C]) with ``pad`` bytes of garbage after each row."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels, dtype).reshape(height, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return Image(height=height, width=width, encoding=encoding, is_bigendian=bigendian,
                 step=padded.shape[1], data=padded.tobytes())


RGB = _reference()
BGR = RGB[:, :, ::-1]
ALPHA = np.full((H, W, 1), 77, np.uint8)
GRAY = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)


def _sixteen(image: np.ndarray) -> np.ndarray:
    return image.astype(np.uint16) * 256 + 99  # the low byte must be dropped


EXACT_CASES = {
    "rgb8": (RGB, RGB), "bgr8": (BGR, RGB), "8UC3": (BGR, RGB),
    "rgba8": (np.concatenate([RGB, ALPHA], -1), RGB), "bgra8": (np.concatenate([BGR, ALPHA], -1), RGB),
    "8UC4": (np.concatenate([BGR, ALPHA], -1), RGB),
    "mono8": (GRAY, np.repeat(GRAY[:, :, None], 3, -1)), "8UC1": (GRAY, np.repeat(GRAY[:, :, None], 3, -1)),
    "rgb16": (_sixteen(RGB), RGB), "bgr16": (_sixteen(BGR), RGB), "16UC3": (_sixteen(BGR), RGB),
    "rgba16": (_sixteen(np.concatenate([RGB, ALPHA], -1)), RGB),
    "bgra16": (_sixteen(np.concatenate([BGR, ALPHA], -1)), RGB),
    "mono16": (_sixteen(GRAY), np.repeat(GRAY[:, :, None], 3, -1)),
    "16UC1": (_sixteen(GRAY), np.repeat(GRAY[:, :, None], 3, -1)),
}


@pytest.mark.parametrize("encoding", sorted(EXACT_CASES))
@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize("bigendian", [False, True])
def test_direct_encodings_convert_exactly(encoding: str, pad: int, bigendian: bool) -> None:
    pixels, expected = EXACT_CASES[encoding]
    rgb = image_to_rgb(_msg(pixels, encoding, pad=pad, bigendian=bigendian))
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """A Bayer raw image of ``rgb``: ``pattern`` names the colours of the 2x2 cell in reading order."""
    index = {"r": 0, "g": 1, "b": 2}
    raw = np.empty(rgb.shape[:2], rgb.dtype)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, index[colour]]
    return raw


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_demosaic_to_the_right_colours(pattern: str, bits: int) -> None:
    raw = _mosaic(RGB, pattern)
    if bits == 16:
        raw = _sixteen(raw)
    rgb = image_to_rgb(_msg(raw, f"bayer_{pattern}{bits}", pad=2)).astype(int)
    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    assert np.abs(rgb[inner] - RGB[inner].astype(int)).mean() < 4


def _i420_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = yuv[:H]
    u = yuv[H:H + H // 4].reshape(H // 2, W // 2)
    v = yuv[H + H // 4:].reshape(H // 2, W // 2)
    return y, u, v


def test_packed_and_planar_yuv_convert_to_rgb() -> None:
    y, u, v = _i420_planes(RGB)
    u_full, v_full = (np.repeat(c, 2, axis=0) for c in (u, v))  # 4:2:0 -> 4:2:2 rows
    uyvy = np.empty((H, W, 2), np.uint8)
    uyvy[:, :, 1] = y
    uyvy[:, 0::2, 0], uyvy[:, 1::2, 0] = u_full, v_full
    yuyv = uyvy[:, :, ::-1]
    nv21 = np.concatenate([y, np.stack([v, u], -1).reshape(H // 2, W)])
    msgs = {"uyvy": _msg(uyvy, "uyvy", pad=4), "yuv422": _msg(uyvy, "yuv422"),
            "yuyv": _msg(yuyv, "yuyv"), "yuv422_yuy2": _msg(yuyv, "yuv422_yuy2", pad=4)}
    nv21_msg = _msg(nv21, "nv21", pad=4)
    nv21_msg.height = H  # nv21's height is the image's, the data holds 1.5x as many rows
    msgs["nv21"] = nv21_msg
    for encoding, msg in msgs.items():
        rgb = image_to_rgb(msg)
        assert rgb.shape == (H, W, 3), encoding
        assert np.abs(rgb.astype(int) - RGB.astype(int)).mean() < 6, encoding


@pytest.mark.parametrize("encoding, fragment", [
    ("32FC1", "not a camera frame"), ("16SC1", "not a camera frame"), ("64FC1", "not a camera frame"),
    ("jpeg", "not a known image encoding"), ("", "not a known image encoding"),
])
def test_non_camera_encodings_are_rejected_with_the_reason(encoding: str, fragment: str) -> None:
    msg = Image(height=4, width=4, encoding=encoding, step=16, data=bytes(64))
    with pytest.raises(ImageConversionError, match=fragment) as err:
        image_to_rgb(msg)
    assert "rgb8" in str(err.value)  # says what is expected


@pytest.mark.parametrize("msg, fragment", [
    (Image(height=0, width=4, encoding="rgb8", step=12, data=b""), "empty"),
    (Image(height=4, width=0, encoding="rgb8", step=0, data=b""), "empty"),
    (Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(47)), "truncated"),
    (Image(height=4, width=4, encoding="rgb8", step=8, data=bytes(64)), "step 8 is smaller"),
    (Image(height=100_000, width=100_000, encoding="mono8", step=100_000, data=bytes(10)), "larger than"),
    (Image(height=4, width=3, encoding="uyvy", step=6, data=bytes(24)), "even"),
])
def test_broken_images_are_rejected_with_the_reason(msg: Image, fragment: str) -> None:
    with pytest.raises(ImageConversionError, match=fragment):
        image_to_rgb(msg)


def _compressed(data: bytes, fmt: str) -> CompressedImage:
    return CompressedImage(format=fmt, data=data)


@pytest.mark.parametrize("ext, fmt", [(".png", "rgb8; png compressed bgr8"), (".jpg", "jpeg")])
def test_compressed_images_decode_to_rgb(ext: str, fmt: str) -> None:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    rgb = compressed_to_rgb(_compressed(buf.tobytes(), fmt))
    assert rgb.shape == (H, W, 3)
    tolerance = 0 if ext == ".png" else 6
    assert np.abs(rgb.astype(int) - RGB.astype(int)).mean() <= tolerance


def _png_header(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big")


def test_broken_compressed_images_are_rejected_with_the_reason() -> None:
    ok, jpeg = cv2.imencode(".jpg", RGB)
    cases = {
        "no data": _compressed(b"", "jpeg"),
        "cannot be decoded": _compressed(jpeg.tobytes()[:40] + bytes(200), "jpeg"),
        "larger than": _compressed(_png_header(100_000, 100_000) + bytes(100), "png"),
        "compressed depth": _compressed(jpeg.tobytes(), "16UC1; compressedDepth png"),
    }
    for fragment, msg in cases.items():
        with pytest.raises(ImageConversionError, match=fragment):
            compressed_to_rgb(msg)
    assert MAX_PIXELS < 100_000 * 100_000


def test_outgoing_images_round_trip() -> None:
    header = Header(frame_id="cam")
    back = image_to_rgb(rgb_to_image_msg(RGB, header))
    np.testing.assert_array_equal(back, RGB)
    labels = np.arange(H * W, dtype=np.int32).reshape(H, W) * 1000
    msg = labels_to_image_msg(labels, header)
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("32SC1", W * 4, "cam")
    np.testing.assert_array_equal(np.frombuffer(msg.data, "<i4").reshape(H, W), labels)
