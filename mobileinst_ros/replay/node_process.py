"""``mobileinst_node`` in a child process: the one runner used by the demo, the evaluation's live mode
and the node tests.

    from mobileinst_ros.replay.node_process import NodeProcess, isolated_env, node_ros_args
    env = isolated_env()                                   # a ROS domain of its own, loopback only
    with NodeProcess(log, node_ros_args({"model_path": model}, "/camera/image_raw"), env) as node:
        ...                                                # the node is active here
        node.check_running()

Entering starts the node and waits until it says it is active, failing early with its last log line
when it exits (bad model, bad parameter); leaving stops it with SIGINT. ``wait_until_active=False``
(lifecycle tests, start-up failures) only starts it.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["FASTDDS_PROFILE", "NodeError", "NodeProcess", "fastdds_env", "isolated_env", "node_command",
           "node_ros_args"]

FASTDDS_PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_profile.xml"
NODE_MODULE = "mobileinst_ros.node.mobileinst_node"
NODE_READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


class NodeError(RuntimeError):
    """The node exited, or did not become active in time; the text carries its last log line."""


def fastdds_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) with the package's Fast DDS profile (16 MiB shared-memory segments,
    so that camera images are not lost on one host) unless FASTDDS_DEFAULT_PROFILES_FILE is already set."""
    env = dict(os.environ if base is None else base)
    if not env.get("FASTDDS_DEFAULT_PROFILES_FILE") and FASTDDS_PROFILE.is_file():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    return env


def isolated_env(domain_id: int | None = None, domains: tuple[int, int] = (1, 100)) -> dict[str, str]:
    """``fastdds_env()`` on a ROS domain of its own (``domain_id``, default a random one in ``domains``) with
    loopback discovery: parallel runs and a robot's own graph cannot cross-talk with this one."""
    env = fastdds_env()
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.SystemRandom().randint(*domains))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def node_ros_args(params: Mapping[str, object], image_topic: str | None = None, params_file: Path | None = None,
                  remaps: Mapping[str, str] | None = None) -> list[str]:
    """``--ros-args`` items: the params file, then ``-p name:=value`` (which win), the image remapping
    and any other ``remaps`` (node topic -> graph topic, e.g. depth/image)."""
    args = ["--params-file", str(params_file)] if params_file is not None else []
    args += [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    remaps = {**({"image": image_topic} if image_topic else {}), **(remaps or {})}
    return args + [a for k, v in remaps.items() for a in ("-r", f"{k}:={v}")]


def node_command(ros_args: Sequence[str]) -> list[str]:
    """The command line of mobileinst_node with ``ros_args``."""
    return [sys.executable, "-m", NODE_MODULE, "--ros-args", *ros_args]


class NodeProcess:
    """The node in its own process and session (the caller's Ctrl-C reaches it once, through ``stop``),
    stdout and stderr in ``log``. Failures raise ``error`` (the caller's exception class)."""

    def __init__(self, log: Path, ros_args: Sequence[str], env: Mapping[str, str] | None = None, *,
                 error: type[Exception] = NodeError, ready_timeout_s: float = NODE_READY_TIMEOUT_S,
                 wait_until_active: bool = True, cwd: Path | None = None) -> None:
        self.command = node_command(ros_args)
        self.log, self.error, self.ready_timeout_s = Path(log), error, ready_timeout_s
        self.env = dict(os.environ if env is None else env)
        self.cwd, self._wait = cwd, wait_until_active
        self.process: subprocess.Popen | None = None

    def start(self) -> NodeProcess:
        with open(self.log, "w") as stream:
            self.process = subprocess.Popen(self.command, stdout=stream, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.cwd, start_new_session=True)
        return self

    def __enter__(self) -> NodeProcess:
        if self.process is None:
            self.start()
        try:
            if self._wait:
                self.wait_until_active()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def last_line(self) -> str:
        lines = [line for line in self.output().splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the node process (Linux /proc), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def wait_until_active(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while ": active: " not in self.output():
            if self.process.poll() is not None:
                raise self.error(f"mobileinst_node exited with status {self.process.returncode}: {self.last_line()}")
            if time.monotonic() > deadline:
                raise self.error(f"mobileinst_node not active after {self.ready_timeout_s:.0f} s: {self.last_line()}")
            time.sleep(0.05)  # polling the node's log file for its own report, not waiting for discovery

    def check_running(self) -> None:
        """Raise ``error`` if the node has exited (call after a replay)."""
        if self.process.poll() is not None:
            raise self.error(f"mobileinst_node exited during the replay (status {self.process.returncode}): "
                             f"{self.last_line()}")

    def stop(self) -> int | None:
        """SIGINT (Ctrl-C), then SIGKILL after STOP_TIMEOUT_S; the exit status (None if never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
