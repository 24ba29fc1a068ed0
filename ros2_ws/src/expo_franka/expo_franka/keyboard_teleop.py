"""Keyboard teleop for the simulator: key presses in a terminal -> sensor_msgs/Joy.

``keyboard_teleop`` (console script) reads single key presses from its terminal and publishes a
``sensor_msgs/Joy`` on ``joy`` at ``--rate`` Hz (and on every key), which the teleop node maps
with ``expo_bringup/config/teleop_keyboard.yaml`` like any gamepad. Keys::

    w / s   +x / -x (away from / towards the robot)     u / o   +roll / -roll
    a / d   +y / -y (left / right, robot's view)        i / k   +pitch / -pitch
    r / f   +z / -z (up / down)                         j / l   +yaw / -yaw
    space   take / give back control (the "deadman", latched)
    g       toggle the gripper (while in control)        x       e-stop (latched)
    q       quit

Joy layout: 6 axes (x, y, z, roll, pitch, yaw, each -1, 0 or 1) and 3 buttons (0 control,
1 gripper toggle, 2 e-stop). A terminal reports key *presses* (and auto-repeats a held key),
never releases: a motion key moves for ``hold_s`` after its last press/repeat, so a held key
moves continuously after the terminal's repeat delay (~0.25-0.6 s; the default ``hold_s`` 0.5 s
bridges it). For the same reason control is a toggle, not a true deadman: this tool is for the
simulator only; on the arm use a SpaceMouse or a gamepad with a held deadman button.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import threading
import tty

import numpy as np

#: key -> (axis, direction)
MOTION_KEYS = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
    "u": (3, 1.0),
    "o": (3, -1.0),
    "i": (4, 1.0),
    "k": (4, -1.0),
    "j": (5, 1.0),
    "l": (5, -1.0),
}
CONTROL_BUTTON, GRIPPER_BUTTON, E_STOP_BUTTON = 0, 1, 2
NUM_AXES, NUM_BUTTONS = 6, 3
_NS = 1_000_000_000


class KeyboardJoy:
    """Key presses -> Joy axes and buttons (pure; see the module docstring)."""

    def __init__(self, hold_s: float = 0.5) -> None:
        if not hold_s > 0:
            raise ValueError(f"hold_s must be > 0 s, got {hold_s!r}")
        self.hold_ns = int(hold_s * _NS)
        self._until = np.zeros(NUM_AXES, dtype=np.int64)  # axis active until this time
        self._sign = np.zeros(NUM_AXES)
        self.control = False
        self._gripper_pulse = False  # one message with the toggle button pressed
        self.e_stop = False
        self.quit = False

    def key(self, ch: str, now_ns: int) -> None:
        """One key press (or auto-repeat) at ``now_ns``; unknown keys are ignored."""
        ch = ch.lower()
        if ch in MOTION_KEYS:
            axis, sign = MOTION_KEYS[ch]
            self._sign[axis] = sign
            self._until[axis] = int(now_ns) + self.hold_ns
        elif ch == " ":
            self.control = not self.control
        elif ch == "g":
            self._gripper_pulse = True
        elif ch == "x":
            self.e_stop = True
        elif ch in ("q", "\x03"):  # q or Ctrl-C
            self.quit = True

    def joy(self, now_ns: int) -> tuple[list[float], list[int]]:
        """The axes (6) and buttons (3) to publish now; a gripper or e-stop press is reported in
        one message (its rising edge), control while toggled on."""
        active = self._until > int(now_ns)
        axes = np.where(active, self._sign, 0.0).tolist()
        buttons = [int(self.control), int(self._gripper_pulse), int(self.e_stop)]
        self._gripper_pulse = False
        self.e_stop = False
        return axes, buttons


def _read_keys(keys: KeyboardJoy, clock, stop: threading.Event, lock: threading.Lock) -> None:
    fd = sys.stdin.fileno()
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            ch = os.read(fd, 1).decode(errors="ignore")
            with lock:
                keys.key(ch, clock())
            if keys.quit:
                stop.set()


def main(argv: list[str] | None = None) -> int:
    """Publish Joy from this terminal's key presses until q / Ctrl-C (see the module docstring)."""
    import rclpy
    from expo_ros import conversions as cv
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Joy

    p = argparse.ArgumentParser(prog="keyboard_teleop", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="Joy messages per second (default 20)")
    p.add_argument("--hold", type=float, default=0.5, help="seconds a motion key acts after a press")
    args, ros_args = p.parse_known_args(argv)
    if not sys.stdin.isatty():
        print("keyboard_teleop: stdin is not a terminal", file=sys.stderr)
        return 2
    rclpy.init(args=ros_args)
    node = rclpy.create_node("keyboard_teleop")
    pub = node.create_publisher(Joy, "joy", 10)
    keys, lock, stop = KeyboardJoy(args.hold), threading.Lock(), threading.Event()
    clock = lambda: node.get_clock().now().nanoseconds  # noqa: E731

    def publish() -> None:
        with lock:
            axes, buttons = keys.joy(clock())
        pub.publish(cv.joy_msg(axes, buttons, clock(), "keyboard"))

    node.create_timer(1.0 / args.rate, publish)
    print(__doc__.split("Keys::")[1].split("Joy layout")[0], file=sys.stderr)
    saved = termios.tcgetattr(sys.stdin.fileno())
    reader = threading.Thread(target=_read_keys, args=(keys, clock, stop, lock), daemon=True)
    try:
        tty.setcbreak(sys.stdin.fileno())
        reader.start()
        while rclpy.ok() and not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        with lock:
            keys.control = False  # quitting gives control back (one last message says so)
        if rclpy.ok():
            publish()
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
