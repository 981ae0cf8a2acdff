"""The few liblilv-0 calls Dualtone uses, bound with ctypes from the declarations in the public
header lilv.h (0.24). Only the runtime library is needed (Debian: liblilv-0-0). Every lilv object
is an opaque pointer (a Python int or None here); `Node` helpers turn nodes into Python values.

Ownership, as lilv.h documents it: functions marked FREE below return something the caller frees
(lilv_node_free / lilv_nodes_free / lilv_scale_points_free / lilv_free); the rest return pointers
owned by the world or the plugin."""
from __future__ import annotations

import ctypes
import ctypes.util
import math

P = ctypes.c_void_p
_U32, _BOOL, _CHARP = ctypes.c_uint32, ctypes.c_bool, ctypes.c_char_p

# LilvSetPortValueFunc: void (const char *symbol, void *user_data, const void *value, uint32 size, uint32 type)
SET_PORT_VALUE = ctypes.CFUNCTYPE(None, _CHARP, P, P, _U32, _U32)

# name: (restype, argtypes)
_SIGNATURES = {
    "lilv_free": (None, [P]),
    "lilv_new_uri": (P, [P, _CHARP]),
    "lilv_node_free": (None, [P]),
    "lilv_node_equals": (_BOOL, [P, P]),
    "lilv_node_is_uri": (_BOOL, [P]),
    "lilv_node_as_uri": (_CHARP, [P]),
    "lilv_node_as_string": (_CHARP, [P]),
    "lilv_node_is_float": (_BOOL, [P]),
    "lilv_node_is_int": (_BOOL, [P]),
    "lilv_node_as_float": (ctypes.c_float, [P]),
    "lilv_node_as_int": (ctypes.c_int, [P]),
    "lilv_node_get_path": (P, [P, P]),                            # FREE (lilv_free)
    "lilv_nodes_free": (None, [P]),
    "lilv_nodes_size": (ctypes.c_uint, [P]),
    "lilv_nodes_begin": (P, [P]),
    "lilv_nodes_get": (P, [P, P]),
    "lilv_nodes_next": (P, [P, P]),
    "lilv_nodes_is_end": (_BOOL, [P, P]),
    "lilv_plugins_begin": (P, [P]),
    "lilv_plugins_get": (P, [P, P]),
    "lilv_plugins_next": (P, [P, P]),
    "lilv_plugins_is_end": (_BOOL, [P, P]),
    "lilv_plugins_get_by_uri": (P, [P, P]),
    "lilv_scale_points_free": (None, [P]),
    "lilv_scale_points_begin": (P, [P]),
    "lilv_scale_points_get": (P, [P, P]),
    "lilv_scale_points_next": (P, [P, P]),
    "lilv_scale_points_is_end": (_BOOL, [P, P]),
    "lilv_scale_point_get_label": (P, [P]),
    "lilv_scale_point_get_value": (P, [P]),
    "lilv_world_new": (P, []),
    "lilv_world_free": (None, [P]),
    "lilv_world_load_all": (None, [P]),
    "lilv_world_load_resource": (ctypes.c_int, [P, P]),
    "lilv_world_get_all_plugins": (P, [P]),
    "lilv_plugin_verify": (_BOOL, [P]),
    "lilv_plugin_get_uri": (P, [P]),
    "lilv_plugin_get_bundle_uri": (P, [P]),
    "lilv_plugin_get_name": (P, [P]),                             # FREE
    "lilv_plugin_get_class": (P, [P]),
    "lilv_plugin_get_value": (P, [P, P]),                         # FREE (nodes)
    "lilv_plugin_get_required_features": (P, [P]),                # FREE (nodes)
    "lilv_plugin_get_num_ports": (_U32, [P]),
    "lilv_plugin_get_port_by_index": (P, [P, _U32]),
    "lilv_plugin_get_author_name": (P, [P]),                      # FREE
    "lilv_plugin_get_related": (P, [P, P]),                       # FREE (nodes)
    "lilv_port_get": (P, [P, P, P]),                              # FREE
    "lilv_port_has_property": (_BOOL, [P, P, P]),
    "lilv_port_is_a": (_BOOL, [P, P, P]),
    "lilv_port_get_symbol": (P, [P, P]),
    "lilv_port_get_name": (P, [P, P]),                            # FREE
    "lilv_port_get_range": (None, [P, P, ctypes.POINTER(P), ctypes.POINTER(P), ctypes.POINTER(P)]),  # FREE x3
    "lilv_port_get_scale_points": (P, [P, P]),                    # FREE (scale points)
    "lilv_plugin_class_get_uri": (P, [P]),
    "lilv_plugin_class_get_label": (P, [P]),
    "lilv_state_new_from_world": (P, [P, P, P]),                  # FREE (lilv_state_free)
    "lilv_state_free": (None, [P]),
    "lilv_state_get_label": (_CHARP, [P]),
    "lilv_state_emit_port_values": (None, [P, SET_PORT_VALUE, P]),
    "lilv_plugin_instantiate": (P, [P, ctypes.c_double, P]),     # FREE (lilv_instance_free)
    "lilv_instance_free": (None, [P]),
}

_lib = None


def library() -> ctypes.CDLL:
    """liblilv-0, loaded once; OSError when it is not installed."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("lilv-0") or "liblilv-0.so.0"
        lib = ctypes.CDLL(name)
        for fn, (restype, argtypes) in _SIGNATURES.items():
            f = getattr(lib, fn)
            f.restype, f.argtypes = restype, argtypes
        _lib = lib
    return _lib


class Lilv:
    """Attribute access to the bound functions without the lilv_ prefix: L.world_new()."""

    def __getattr__(self, name):
        f = getattr(library(), "lilv_" + name)
        setattr(self, name, f)
        return f


L = Lilv()


# ---- nodes as Python values (these never free what they are given)

def text(node) -> str:
    """A node's string form (a literal's text or a URI), "" for NULL."""
    if not node:
        return ""
    s = L.node_as_string(node)
    return s.decode("utf-8", "replace") if s else ""


def number(node) -> float | None:
    """A numeric literal as a float, None for NULL or anything else."""
    if not node or not (L.node_is_float(node) or L.node_is_int(node)):
        return None
    try:
        v = float(text(node))          # the literal as written: 0.1 stays 0.1, not float32's 0.1000000015
    except ValueError:
        v = float(L.node_as_float(node))
    return v if math.isfinite(v) else None


def path(node) -> str:
    """The local path of a file: URI node (lilv_node_get_path), else its string."""
    if not node:
        return ""
    p = L.node_get_path(node, None)
    if not p:
        return text(node)
    try:
        return ctypes.string_at(p).decode("utf-8", "replace")
    finally:
        L.free(p)


def owned_text(node) -> str:
    """text() of a node the caller owns, freeing it."""
    try:
        return text(node)
    finally:
        if node:
            L.node_free(node)


def nodes(collection) -> list:
    """The node pointers of a LilvNodes collection (owned by the collection)."""
    out = []
    if not collection:
        return out
    it = L.nodes_begin(collection)
    while not L.nodes_is_end(collection, it):
        out.append(L.nodes_get(collection, it))
        it = L.nodes_next(collection, it)
    return out


def owned_texts(collection) -> list[str]:
    """The strings of a LilvNodes collection the caller owns, freeing it."""
    try:
        return [text(n) for n in nodes(collection)]
    finally:
        if collection:
            L.nodes_free(collection)


def plugins(collection) -> list:
    out = []
    it = L.plugins_begin(collection)
    while not L.plugins_is_end(collection, it):
        out.append(L.plugins_get(collection, it))
        it = L.plugins_next(collection, it)
    return out


def scale_points(points) -> list[tuple[float, str]]:
    """(value, label) of a LilvScalePoints collection the caller owns, freeing it."""
    out = []
    if not points:
        return out
    try:
        it = L.scale_points_begin(points)
        while not L.scale_points_is_end(points, it):
            sp = L.scale_points_get(points, it)
            v = number(L.scale_point_get_value(sp))
            if v is not None:
                out.append((v, text(L.scale_point_get_label(sp))))
            it = L.scale_points_next(points, it)
    finally:
        L.scale_points_free(points)
    return out
