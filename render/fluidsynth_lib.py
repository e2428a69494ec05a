"""A minimal ctypes binding to libfluidsynth (2.x): just what rendering a note table needs.

The library comes from the Debian package ``libfluidsynth3`` (``fluidsynth`` pulls it in).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

CHANNEL_TYPE_MELODIC = 0
CHANNEL_TYPE_DRUM = 1
_LOG_LEVELS = range(5)  # FLUID_PANIC .. FLUID_DBG


class FluidSynthMissing(RuntimeError):
    """libfluidsynth could not be loaded."""


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded libfluidsynth, with argument types declared and its logging silenced."""
    names = [ctypes.util.find_library("fluidsynth"), "libfluidsynth.so.3", "libfluidsynth.so.2",
             "libfluidsynth.dylib", "libfluidsynth-3.dll"]
    lib = None
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise FluidSynthMissing("libfluidsynth not found: install FluidSynth (Debian: apt-get install libfluidsynth3)")
    p, i, d, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    fp = ctypes.POINTER(ctypes.c_float)
    signatures = {
        "new_fluid_settings": (p, []),
        "delete_fluid_settings": (None, [p]),
        "fluid_settings_setnum": (i, [p, s, d]),
        "fluid_settings_setint": (i, [p, s, i]),
        "fluid_settings_setstr": (i, [p, s, s]),
        "new_fluid_synth": (p, [p]),
        "delete_fluid_synth": (None, [p]),
        "fluid_synth_sfload": (i, [p, s, i]),
        "fluid_synth_program_select": (i, [p, i, i, i, i]),
        "fluid_synth_set_channel_type": (i, [p, i, i]),
        "fluid_synth_noteon": (i, [p, i, i, i]),
        "fluid_synth_noteoff": (i, [p, i, i]),
        "fluid_synth_cc": (i, [p, i, i, i]),
        "fluid_synth_pitch_bend": (i, [p, i, i]),
        "fluid_synth_system_reset": (i, [p]),
        "fluid_synth_write_float": (i, [p, i, fp, i, i, fp, i, i]),
        "fluid_set_log_function": (p, [i, p, p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    for level in _LOG_LEVELS:
        lib.fluid_set_log_function(level, None, None)
    _silence_glib()
    return lib


# GLib's log handler: (domain, level, message, user data). A no-op, kept alive as long as the process.
_GLOG_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_GLOG_SILENT = _GLOG_FUNC(lambda domain, level, message, data: None)


def _silence_glib() -> None:
    """Drop what GLib libraries under FluidSynth log (libinstpatch, which reads SoundFonts, writes
    "** CRITICAL **: ipatch_container_init_iter: assertion ... failed" to stderr for a broken file, beside
    our one-line error). Nothing else in the process uses GLib's log; without GLib, nothing to do."""
    name = ctypes.util.find_library("glib-2.0")
    if name is None:
        return
    try:
        glib = ctypes.CDLL(name)
    except OSError:
        return
    glib.g_log_set_default_handler.restype = ctypes.c_void_p
    glib.g_log_set_default_handler.argtypes = [_GLOG_FUNC, ctypes.c_void_p]
    glib.g_log_set_default_handler(_GLOG_SILENT, None)
