"""Play a rosbag2 through real ROS topics and record what comes back, each in its own process.

This is ``ros2 bag play`` + ``ros2 bag record`` for machines without rosbag2_py: the demo and the
evaluation tool's live mode use it to feed a running ``mobileinst_node`` (started with
``node_process.NodeProcess`` on a ROS domain of its own, ``isolated_env``) and keep its output.

Python API (one call)::

    from mobileinst_ros.replay.bag_replay import replay
    from mobileinst_ros.replay.node_process import fastdds_env
    result = replay("runs/demo/input_bag", "runs/demo/output_bag",
                    play_topics=["/camera/image_raw"],
                    record_topics={"/mobileinst/instances": "mobileinst_ros/msg/InstanceArray",
                                   "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"},
                    env=fastdds_env())
    result.sent          # [(header stamp ns, wall-clock send time ns)] per published image (first play topic)
    result.received      # {topic: message count} written to the output bag

``replay`` starts the recorder, waits until each recorded topic has a publisher, starts the player,
which waits until each played topic has a subscriber, plays the bag at its recorded rate (times
``rate``), and stops the recorder once the last image's output has arrived or nothing arrived for
``settle_s`` (with ``final_topic``, e.g. /diagnostics, only after one more message on it has come, so
that the node's last report counts every image it processed). The output bag (sqlite3) stores each message's wall-clock receive time as its timestamp, so
``receive - send`` is the end-to-end latency across processes. Messages keep their recorded header
stamps. Raises ``ReplayError`` with the child's last error line when a process fails or times out.

Command line (what ``replay`` runs; also usable by hand)::

    python -m mobileinst_ros.replay.bag_replay play BAG --topic /camera/image_raw [--rate 1] [--reliable]
    python -m mobileinst_ros.replay.bag_replay record OUT_BAG --topic /mobileinst/instances=mobileinst_ros/msg/InstanceArray

The player prints ``sent <topic> <stamp_ns> <send_ns>`` per message, the recorder ``ready`` once its topics
have publishers and ``got <topic> <stamp_ns>`` per message; both stop cleanly on SIGINT.
"""
from __future__ import annotations

import argparse
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobileinst_ros.data import bags
from mobileinst_ros.replay.node_process import fastdds_env

__all__ = ["ReplayError", "ReplayResult", "recorded_by_stamp", "replay"]

_MESSAGE_CLASSES = {
    "sensor_msgs/msg/Image": ("sensor_msgs.msg", "Image"),
    "sensor_msgs/msg/CompressedImage": ("sensor_msgs.msg", "CompressedImage"),
    "sensor_msgs/msg/CameraInfo": ("sensor_msgs.msg", "CameraInfo"),
    "visualization_msgs/msg/MarkerArray": ("visualization_msgs.msg", "MarkerArray"),
    "mobileinst_ros/msg/InstanceArray": ("mobileinst_ros.msg", "InstanceArray"),
    "mobileinst_ros/msg/ModelInfo": ("mobileinst_ros.msg", "ModelInfo"),
    "diagnostic_msgs/msg/DiagnosticArray": ("diagnostic_msgs.msg", "DiagnosticArray"),
}
_LINGER_S = 0.5  # the player stays this long after its last message so that it is delivered


class ReplayError(RuntimeError):
    """A player or recorder process that failed, or a replay that did not finish in time."""


@dataclass
class ReplayResult:
    """``sent``: (header stamp ns, send time ns) per played message of the first play topic (the camera
    images; others, such as depth, are played alongside), in order; ``received``: messages
    per recorded topic; ``output``: the output bag."""

    output: Path
    sent: list[tuple[int, int]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)


def recorded_by_stamp(recording: str | Path, topic: str, msgtype: str = "mobileinst_ros/msg/InstanceArray",
                      ) -> dict[int, tuple[Any, int]]:
    """Header stamp -> (message, receive time ns) of what the recorder wrote on ``topic`` (empty: none)."""
    if topic not in bags.bag_topics(recording):
        return {}
    return {bags.stamp_ns(msg.header): (msg, received)
            for received, _, msg in bags.read_messages(recording, {topic: msgtype})}


def _message_class(msgtype: str) -> Any:
    if msgtype not in _MESSAGE_CLASSES:
        raise ValueError(f"cannot replay or record {msgtype}; supported: {', '.join(sorted(_MESSAGE_CLASSES))}")
    module, name = _MESSAGE_CLASSES[msgtype]
    return getattr(__import__(module, fromlist=[name]), name)


# --- the parent: replay() ---------------------------------------------------------------------------
class _Child:
    """A child process whose stdout lines are collected by a thread; stderr is kept for error reports."""

    def __init__(self, args: list[str], env: Mapping[str, str], what: str) -> None:
        self.what = what
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen([sys.executable, "-m", "mobileinst_ros.replay.bag_replay", *args], env=dict(env),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        sink(None)

    def next_line(self, timeout: float) -> str | None:
        """The next stdout line; None at end of output; raises queue.Empty after ``timeout``."""
        return self.lines.get(timeout=timeout)

    def error(self, message: str) -> ReplayError:
        errors = [line for line in self._stderr if line]
        detail = f": {errors[-1]}" if errors else ""
        return ReplayError(f"{self.what} {message}{detail}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def replay(bag: str | Path, output: str | Path, play_topics: Sequence[str],
           record_topics: Mapping[str, str], *, rate: float = 1.0, reliable: bool = False,
           env: Mapping[str, str] | None = None, settle_s: float = 2.0, timeout_s: float = 600.0,
           final_topic: str | None = None) -> ReplayResult:
    """Play ``play_topics`` of ``bag`` and record ``record_topics`` (topic -> message type) into the new
    bag ``output``. See the module docstring."""
    env = fastdds_env(env)
    output = Path(output)
    record_args = ["record", str(output)] + [a for t, m in record_topics.items() for a in ("--topic", f"{t}={m}")]
    play_args = ["play", str(bag), "--rate", str(rate)] + [a for t in play_topics for a in ("--topic", t)]
    play_args += ["--reliable"] if reliable else []
    session = _Session(ReplayResult(output), _Child(record_args, env, "recorder"), timeout_s, play_topics[0])
    try:
        session.wait_until_ready()
        session.play(_Child(play_args, env, "player"))
        session.settle(settle_s)
        if final_topic is not None:
            session.await_one_more(final_topic, settle_s)
    finally:
        code = session.stop()
    if code != 0:
        raise session.recorder.error(f"exited with status {code}")
    return session.result


class _Session:
    """The parent's view of one replay: reads the children's lines and fills ``result``."""

    def __init__(self, result: ReplayResult, recorder: _Child, timeout_s: float, images_topic: str) -> None:
        self.result, self.recorder, self.player, self.images_topic = result, recorder, None, images_topic
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.stamps: set[int] = set()  # header stamps of everything recorded so far

    def _line(self, child: _Child, timeout: float) -> str | None:
        if time.monotonic() > self.deadline:
            raise child.error(f"did not finish within {self.timeout_s:.0f} s")
        return child.next_line(timeout=timeout)

    def wait_until_ready(self) -> None:
        while True:
            try:
                line = self._line(self.recorder, timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise self.recorder.error(f"exited with status {self.recorder.process.wait()} before it was ready")
            if line == "ready":
                return

    def drain(self, final: bool = False) -> int:
        """Count the recorder's ``got <topic> <stamp>`` lines so far; return how many. ``final``: the
        recorder is stopping, read to the end of its output."""
        count = 0
        while True:
            try:
                line = self.recorder.next_line(timeout=1.0 if final else 0)
            except queue.Empty:
                return count
            if line is None:
                if final:
                    return count
                raise self.recorder.error(f"exited with status {self.recorder.process.wait()} while recording")
            if line.startswith("got "):
                _, topic, stamp = line.split()
                self.result.received[topic] = self.result.received.get(topic, 0) + 1
                self.stamps.add(int(stamp))
                count += 1

    def play(self, player: _Child) -> None:
        """Read the player's ``sent <topic> <stamp> <time>`` lines until it exits."""
        self.player = player
        while True:
            self.drain()
            try:
                line = self._line(player, timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("sent "):
                _, topic, stamp, sent = line.split()
                if topic == self.images_topic:
                    self.result.sent.append((int(stamp), int(sent)))
        if player.process.wait() != 0:
            raise player.error(f"exited with status {player.process.returncode}")

    def settle(self, settle_s: float) -> None:
        """Wait for the output of the last played message, or until nothing arrives for ``settle_s``:
        the node may have dropped the last images in favour of newer ones."""
        last = self.result.sent[-1][0] if self.result.sent else None
        quiet_since = time.monotonic()
        while last not in self.stamps and time.monotonic() - quiet_since < settle_s:
            if self.drain():
                quiet_since = time.monotonic()
            time.sleep(0.02)

    def await_one_more(self, topic: str, timeout_s: float) -> None:
        """Wait until one more message on ``topic`` has been recorded, at most ``timeout_s``."""
        seen, until = self.result.received.get(topic, 0), time.monotonic() + timeout_s
        while self.result.received.get(topic, 0) == seen and time.monotonic() < until:
            self.drain()
            time.sleep(0.02)

    def stop(self) -> int:
        if self.player is not None:
            self.player.stop()
        code = self.recorder.stop()
        self.drain(final=True)
        return code


# --- the children: player and recorder ----------------------------------------------------------------
class _Stop:
    """Set by SIGINT/SIGTERM so that the loops end and files are closed."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, *_: object) -> None:
        self.requested = True


def _wait_until(condition: Any, stop: _Stop, node: Any, timeout_s: float = 60.0) -> bool:
    import rclpy  # noqa: PLC0415  (children only: the parent needs no ROS)

    deadline = time.monotonic() + timeout_s
    while not condition():
        if stop.requested or time.monotonic() > deadline:
            return False
        rclpy.spin_once(node, timeout_sec=0.05)
    return True


def _play(args: argparse.Namespace) -> int:
    import rclpy  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: PLC0415

    from mobileinst_ros.data.bags import bag_topics, read_messages, stamp_ns, typestore  # noqa: PLC0415

    topics = bag_topics(args.bag)
    missing = [t for t in args.topic if t not in topics]
    if missing:
        raise ValueError(f"{args.bag}: no topic {', '.join(missing)}; it has {', '.join(sorted(topics))}")
    wanted = {t: topics[t][0] for t in args.topic}
    stop = _Stop()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("mobileinst_replay_player")
    qos = QoSProfile(history=qos_profile_sensor_data.history, depth=qos_profile_sensor_data.depth,
                     reliability=ReliabilityPolicy.RELIABLE if args.reliable else ReliabilityPolicy.BEST_EFFORT)
    publishers = {t: node.create_publisher(_message_class(m), t, qos) for t, m in wanted.items()}
    if not _wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers.values()), stop, node,
                       args.wait_s) and not stop.requested:
        raise TimeoutError(f"no subscriber on {', '.join(wanted)} within {args.wait_s:.0f} s")
    store = typestore()
    start_wall, start_bag = time.monotonic(), None
    for received_ns, topic, msg in read_messages(args.bag, wanted):
        start_bag = received_ns if start_bag is None else start_bag
        delay = start_wall + (received_ns - start_bag) / 1e9 / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if stop.requested:
            break
        publishers[topic].publish(store.serialize_cdr(msg, wanted[topic]).tobytes())
        print(f"sent {topic} {stamp_ns(msg.header)} {time.time_ns()}", flush=True)
    _wait_until(lambda: False, stop, node, _LINGER_S)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _record(args: argparse.Namespace) -> int:
    import rclpy  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415

    from mobileinst_ros.data.bags import BagWriter  # noqa: PLC0415

    wanted = dict(spec.split("=", 1) for spec in args.topic)
    stop = _Stop()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("mobileinst_replay_recorder")
    # Reliable; transient local only for the latched ModelInfo: a transient-local reader does not match a
    # volatile writer (the node's ~/instances), and "best available" decides too early, before discovery.
    def qos(msgtype: str) -> QoSProfile:
        latched = msgtype == "mobileinst_ros/msg/ModelInfo"
        return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    subscriptions = []
    with BagWriter(args.output, storage="sqlite3") as bag:
        for topic, msgtype in wanted.items():
            cls = _message_class(msgtype)

            def on_message(data: bytes, topic: str = topic, msgtype: str = msgtype, cls: Any = cls) -> None:
                bag.write_raw(topic, msgtype, data, time.time_ns())
                print(f"got {topic} {_header_stamp(data, cls)}", flush=True)

            subscriptions.append(node.create_subscription(cls, topic, on_message, qos(msgtype), raw=True))
        if not _wait_until(lambda: all(s.get_publisher_count() > 0 for s in subscriptions), stop, node,
                           args.wait_s) and not stop.requested:
            raise TimeoutError(f"no publisher on {', '.join(wanted)} within {args.wait_s:.0f} s")
        print("ready", flush=True)
        while not stop.requested:
            rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _header_stamp(data: bytes, cls: Any) -> int:
    from rclpy.serialization import deserialize_message  # noqa: PLC0415

    header = getattr(deserialize_message(data, cls), "header", None)  # a MarkerArray has none
    return 0 if header is None else header.stamp.sec * 10**9 + header.stamp.nanosec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.replay.bag_replay", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    play = sub.add_parser("play", help="publish a bag's topics at the recorded rate")
    play.add_argument("bag", type=Path)
    play.add_argument("--topic", action="append", required=True, help="topic to play (repeat)")
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    play.add_argument("--reliable", action="store_true", help="reliable QoS instead of sensor-data best effort")
    play.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for subscribers")
    record = sub.add_parser("record", help="record topics into a new bag until SIGINT")
    record.add_argument("output", type=Path)
    record.add_argument("--topic", action="append", required=True, help="TOPIC=package/msg/Type (repeat)")
    record.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for publishers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "play" and args.rate <= 0:
        print(f"replay: error: --rate must be positive, got {args.rate}", file=sys.stderr)
        return 2
    try:
        return _play(args) if args.command == "play" else _record(args)
    except Exception as error:  # noqa: BLE001  (a child reports one line; the parent shows it)
        print(f"replay {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
