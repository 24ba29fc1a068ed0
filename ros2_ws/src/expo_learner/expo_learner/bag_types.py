"""The rosbags typestore that knows the project's messages, so bags embed and decode our schemas.

rosbags ships the standard ROS 2 types (``std_msgs``, ``sensor_msgs/Image``, ...) per distro; our
``expo_interfaces`` types are registered from their ``.msg`` text. A bag written with this store
carries the full ``ros2msg`` definition of every type it holds (the message plus all it depends
on: ``std_msgs/Header``, ``builtin_interfaces/Time``, ``sensor_msgs/Image``) and the same RIHS01
type hash rosidl generates, so tools without our packages (``mcap-ros2-support``, Foxglove,
``ros2 bag`` of a full install) decode it.

Reading never trusts the installed definitions: :func:`typestore_for_schema` builds a store from
the schema embedded in the file, so a bag stays readable after ``Transition.msg`` changes.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

log = logging.getLogger(__name__)

INTERFACES_PACKAGE = "expo_interfaces"
TRANSITION_TYPE = "expo_interfaces/msg/Transition"
#: The distro whose standard types (Header, Time, Image) match the pip ROS 2 wheels (Kilted).
BASE_STORE = Stores.ROS2_KILTED


def interface_msg_dir() -> Path:
    """Directory holding ``expo_interfaces``' ``.msg`` files.

    The installed share directory (found through the ament index, i.e. ``AMENT_PREFIX_PATH`` as
    set by ``scripts/env.sh`` or ``install/setup.bash``) wins; a source checkout's
    ``ros2_ws/src/expo_interfaces/msg`` is the fallback. Raises FileNotFoundError naming both.
    """
    tried = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            share = Path(get_package_share_directory(INTERFACES_PACKAGE)) / "msg"
            if any(share.glob("*.msg")):
                return share
            tried.append(str(share))
        except PackageNotFoundError:
            tried.append(f"ament index ({INTERFACES_PACKAGE} not installed)")
    except ImportError:
        tried.append("ament index (ament_index_python not installed)")
    source = Path(__file__).resolve().parents[2] / INTERFACES_PACKAGE / "msg"
    if any(source.glob("*.msg")):
        return source
    tried.append(str(source))
    raise FileNotFoundError(f"no {INTERFACES_PACKAGE} .msg files found; looked in: {', '.join(tried)}")


def interface_types(msg_dir: Path) -> dict:
    """Parse every ``<Name>.msg`` of ``msg_dir`` as ``expo_interfaces/msg/<Name>``."""
    types: dict = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{INTERFACES_PACKAGE}/msg/{path.stem}"))
    if not types:
        raise FileNotFoundError(f"{msg_dir}: no .msg files")
    return types


@functools.cache
def project_typestore() -> Typestore:
    """Kilted's standard types plus all ``expo_interfaces`` messages (built once per process).

    The store is shared: read from it, do not register more types into it.
    """
    msg_dir = interface_msg_dir()
    store = get_typestore(BASE_STORE)
    store.register(interface_types(msg_dir))
    log.debug("registered %s types from %s", INTERFACES_PACKAGE, msg_dir)
    return store


def message_definition(typename: str = TRANSITION_TYPE) -> tuple[str, str]:
    """``(ros2msg definition text with all dependencies, RIHS01 hash)`` of an installed type.

    This is what a bag stores per connection (mcap schema, metadata.yaml type_description_hash).
    """
    store = project_typestore()
    text, _ = store.generate_msgdef(typename, ros_version=2)
    return text, store.hash_rihs01(typename)


@functools.lru_cache(maxsize=16)
def typestore_for_schema(typename: str, schema_text: str) -> Typestore:
    """A store that decodes ``typename`` exactly as a file's embedded ``ros2msg`` schema says.

    Raises ValueError when the schema text does not parse.
    """
    try:
        types = get_types_from_msg(schema_text, typename)
    except Exception as e:  # rosbags raises its own parse errors; callers want one type
        raise ValueError(f"embedded schema of {typename} does not parse: {e}") from e
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    return store
